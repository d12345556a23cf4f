#!/usr/bin/env python3
"""A small client of `autocircuit serve` using only Python's standard library.

    python3 docs/examples/autocircuit_client.py [--url http://127.0.0.1:8080] [--token-file F]

Lists the models, submits a discover job on the bundled induction task, follows its progress as server-sent events,
then downloads the result JSON and the HTML report.
"""
import argparse
import json
import urllib.error
import urllib.request


class AutocircuitClient:
    def __init__(self, url="http://127.0.0.1:8080", token=None):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            # every refusal is {"error": {"status", "field", "message"}}
            err = json.load(e)["error"]
            raise RuntimeError(f"{err['status']} on field {err['field']}: {err['message']}") from None

    def get(self, path):
        with self._request("GET", path) as r:
            return json.load(r)

    def submit(self, **job):
        with self._request("POST", "/jobs", job) as r:
            return json.load(r)["id"]

    def cancel(self, job_id):
        with self._request("DELETE", f"/jobs/{job_id}") as r:
            return json.load(r)

    def events(self, job_id):
        """Yields (event, job) pairs from the job's server-sent events until the final `end` event."""
        with self._request("GET", f"/jobs/{job_id}/events") as r:
            event = None
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    yield event, json.loads(line[len("data: "):])

    def download(self, job_id, what, path):
        with self._request("GET", f"/jobs/{job_id}/{what}") as r, open(path, "wb") as out:
            out.write(r.read())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--token-file")
    args = p.parse_args()
    token = open(args.token_file).read().strip() if args.token_file else None
    client = AutocircuitClient(args.url, token)

    for m in client.get("/models")["models"]:
        print(f"model {m['name']}: {m['architecture']}, {m['n_layers']} layers, "
              f"{m['edges']['component']} edges, tasks {m['tasks']}")
    job_id = client.submit(task="induction-2l", algorithms=["EAP", "Random"], edge_counts=[0, 5, 10, 20])
    print("submitted job", job_id)
    for event, job in client.events(job_id):
        p = job["progress"]
        print(f"  {event}: {job['state']} {p['algorithm'] or ''} {p['step'] or ''} "
              f"{100 * p['fraction']:.0f}% after {p['elapsed_seconds']:.1f} s")
    job = client.get(f"/jobs/{job_id}")
    if job["state"] != "succeeded":
        raise SystemExit(f"job {job_id} {job['state']}: {job['error']}")
    result = client.get(f"/jobs/{job_id}/result")
    for a in result["algorithms"]:
        top = a["topEdges"][0]
        print(f"{a['name']}: top edge {top['edge']} ({top['score']:.4g}), "
              f"CPR {a['faithfulness']['cpr']:.3f}, ROC AUC {a['roc']['auc']:.3f}")
    client.download(job_id, "report", f"report-{job_id}.html")
    print(f"report written to report-{job_id}.html")


if __name__ == "__main__":
    main()
