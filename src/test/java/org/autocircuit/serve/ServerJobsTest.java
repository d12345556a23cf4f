package org.autocircuit.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.autocircuit.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Jobs over real HTTP on loopback: submit, poll, stream, cancel, fetch, restart and list, on the bundled tiny
 * models.
 */
class ServerJobsTest {

    /** A small discover job on the bundled 2-layer induction model (a second or two). */
    static final String TINY_JOB = "{\"task\": \"induction-2l\", \"algorithms\": [\"EAP\", \"Random\"], "
        + "\"edge_counts\": [0, 5, 20], \"seed\": 3}";
    /** The same as a custom job: a model folder and a dataset file named relative to the configured folders. */
    static final String CUSTOM_JOB = "{\"model\": \"induction-2l\", \"dataset\": \"induction.json\", "
        + "\"algorithms\": [\"EAP\"], \"edge_counts\": [0, 5, 20], \"batch_size\": 4, \"batch_count\": 2}";

    @TempDir
    Path tmp;

    @Test
    void jobRunsWhatTheCliRunsAndItsResultAndReportAreServed() throws Exception {
        Path cliResult = tmp.resolve("cli.json");
        assertEquals(0, Main.execute("discover", "--task", "induction-2l", "--algorithms", "EAP,Random",
            "--edge-counts", "0,5,20", "--seed", "3",
            "--no-report", "--result", cliResult.toString()));
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")))) {
            String id = s.submit(TINY_JOB);
            JsonNode done = s.awaitFinal(id);
            assertEquals("succeeded", done.get("state").asText(), done.toString());
            assertEquals(1.0, done.get("progress").get("fraction").asDouble());
            assertEquals("/jobs/" + id + "/result", done.get("links").get("result").asText());

            HttpResponse<String> result = s.get("/jobs/" + id + "/result");
            assertEquals(200, result.statusCode());
            JsonNode served = TestServer.json(result);
            Set<ValidationMessage> errors = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012)
                .getSchema(Files.readString(Path.of("docs/schema/discover-result.schema.json"))).validate(served);
            assertTrue(errors.isEmpty(), "schema errors: " + errors);
            // the same run as the CLI's, field for field, but for the wall-clock fields
            JsonNode fromCli = TestServer.JSON.readTree(cliResult.toFile());
            assertSameJson(withoutClockFields(fromCli), withoutClockFields(served));

            HttpResponse<String> report = s.get("/jobs/" + id + "/report");
            assertEquals(200, report.statusCode());
            assertTrue(report.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
            assertTrue(report.body().startsWith("<!DOCTYPE html>") && report.body().contains("induction-2l"));

            // the loaded task is shared: a second job on it loads nothing new and gives the same scores
            String again = s.submit(TINY_JOB);
            assertEquals("succeeded", s.awaitFinal(again).get("state").asText());
            assertSameJson(withoutClockFields(served), withoutClockFields(TestServer.json(s.get("/jobs/" + again + "/result"))));
            JsonNode health = TestServer.json(s.get("/health"));
            assertEquals(1, health.get("loaded_models").size(), health.toString());

            // a custom job (model folder + dataset file) runs and names them in its result
            String custom = s.submit(CUSTOM_JOB);
            JsonNode customDone = s.awaitFinal(custom);
            assertEquals("succeeded", customDone.get("state").asText(), customDone.toString());
            JsonNode customResult = TestServer.json(s.get("/jobs/" + custom + "/result"));
            assertTrue(customResult.get("run").get("model").asText().endsWith("induction-2l"));
            assertTrue(customResult.get("run").get("dataset").asText().endsWith("induction.json"));
            assertEquals(2, TestServer.json(s.get("/health")).get("loaded_models").size());
        }
    }

    /** Equal JSON trees, or a failure naming the first path where they differ (not two whole documents). */
    static void assertSameJson(JsonNode expected, JsonNode actual) {
        String where = firstDifference("$", expected, actual);
        if (where != null) throw new AssertionError("results differ at " + where);
    }

    private static String firstDifference(String path, JsonNode a, JsonNode b) {
        if (a.isContainerNode() && a.getNodeType() == b.getNodeType()) {
            if (a.size() != b.size()) return path + " (sizes " + a.size() + " vs " + b.size() + ")";
            if (a.isArray()) {
                for (int i = 0; i < a.size(); i++) {
                    String d = firstDifference(path + "[" + i + "]", a.get(i), b.get(i));
                    if (d != null) return d;
                }
            } else {
                for (Iterator<String> it = a.fieldNames(); it.hasNext(); ) {
                    String f = it.next();
                    if (!b.has(f)) return path + "." + f + " (missing)";
                    String d = firstDifference(path + "." + f, a.get(f), b.get(f));
                    if (d != null) return d;
                }
            }
            return null;
        }
        return a.equals(b) ? null : path + ": " + a + " vs " + b;
    }

    /** Drops created_at, timings and per-algorithm seconds, which differ between any two runs. */
    static JsonNode withoutClockFields(JsonNode n) {
        JsonNode copy = n.deepCopy();
        strip(copy);
        return copy;
    }

    private static void strip(JsonNode n) {
        if (n instanceof ObjectNode o) {
            for (String f : List.of("createdAt", "timingsSeconds", "seconds")) o.remove(f);
            for (Iterator<JsonNode> it = o.elements(); it.hasNext(); ) strip(it.next());
        } else if (n.isArray()) {
            for (JsonNode c : n) strip(c);
        }
    }

    @Test
    void weightProcessingIsAJobOptionAndPartOfTheLoadedModel() throws Exception {
        // TL weight processing on GPT-2: the job must equal `discover --weight-processing tl`, and differ from the
        // unprocessed run (EAP scores change with the centred weights), so the option cannot be silently dropped
        String model = "datasets/models/gpt2-tiny-random";
        String dataset = "datasets/ioi-32.json";
        Path tl = tmp.resolve("tl.json");
        assertEquals(0, Main.execute("discover", "--model", model, "--dataset", dataset, "--algorithms", "EAP",
            "--edge-counts", "0,5", "--weight-processing", "tl", "--no-report", "--result", tl.toString()));
        String job = "{\"model\": \"gpt2-tiny-random\", \"dataset\": \"ioi-32.json\", \"algorithms\": [\"EAP\"], "
            + "\"edge_counts\": [0, 5]";
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")))) {
            String processed = s.submit(job + ", \"weight_processing\": \"tl\"}");
            assertEquals("succeeded", s.awaitFinal(processed).get("state").asText());
            JsonNode served = TestServer.json(s.get("/jobs/" + processed + "/result"));
            assertSameJson(withoutClockFields(TestServer.JSON.readTree(tl.toFile())), withoutClockFields(served));

            String plain = s.submit(job + "}");
            assertEquals("succeeded", s.awaitFinal(plain).get("state").asText());
            JsonNode plainResult = TestServer.json(s.get("/jobs/" + plain + "/result"));
            assertTrue(!plainResult.get("algorithms").get(0).get("topEdges").equals(
                served.get("algorithms").get(0).get("topEdges")), "TL processing must change the EAP scores");
            JsonNode health = TestServer.json(s.get("/health"));
            assertEquals(2, health.get("loaded_models").size(), "one loaded model per weight processing: " + health);
        }
    }

    @Test
    void progressStreamsAsServerSentEventsUntilTheEnd() throws Exception {
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")))) {
            String id = s.submit(TINY_JOB);
            HttpResponse<InputStream> r = s.client.send(s.request("/jobs/" + id + "/events").GET().build(),
                HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
            List<String> events = new ArrayList<>();
            List<JsonNode> data = new ArrayList<>();
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.startsWith("event: ")) events.add(line.substring(7));
                    if (line.startsWith("data: ")) data.add(TestServer.JSON.readTree(line.substring(6)));
                }
            }
            assertFalse(events.isEmpty());
            assertEquals("end", events.get(events.size() - 1), events.toString());
            assertEquals(events.size(), data.size());
            assertTrue(events.subList(0, events.size() - 1).stream().allMatch("progress"::equals));
            JsonNode last = data.get(data.size() - 1);
            assertEquals("succeeded", last.get("state").asText());
            double previous = -1;
            for (JsonNode d : data) {
                double f = d.get("progress").get("fraction").asDouble();
                assertTrue(f >= previous && f <= 1.0, "fractions must not go back: " + data);
                previous = f;
            }
        }
    }

    @Test
    void cancellingARunningJobStopsItAndTheModelStaysUsable() throws Exception {
        ServeConfig config = TestServer.config(tmp.resolve("state")).withJobs(1, 8);
        try (TestServer s = new TestServer(config)) {
            // a job long enough to be caught running: ACDC over the token graph, many circuit sizes
            String slow = s.submit("{\"task\": \"induction-2l\", \"algorithms\": [\"ACDC\", \"EAP\", \"Random\"]}");
            String queued = s.submit(TINY_JOB);
            s.await(slow, Set.of("running"), Duration.ofSeconds(60));
            assertEquals("queued", TestServer.json(s.get("/jobs/" + queued)).get("state").asText(),
                "with --max-jobs 1 the second job waits");
            // cancel the queued one: at once
            HttpResponse<String> c1 = s.delete("/jobs/" + queued);
            assertEquals(202, c1.statusCode(), c1.body());
            assertEquals("cancelled", TestServer.json(s.get("/jobs/" + queued)).get("state").asText());
            // cancel the running one: at its next step
            long t0 = System.nanoTime();
            assertEquals(202, s.delete("/jobs/" + slow).statusCode());
            JsonNode stopped = s.awaitFinal(slow);
            double seconds = (System.nanoTime() - t0) / 1e9;
            assertEquals("cancelled", stopped.get("state").asText(), stopped.toString());
            assertTrue(seconds < 10, "cancelling took " + seconds + " s");
            assertEquals(409, s.get("/jobs/" + slow + "/result").statusCode());
            // the model the cancelled job used still works for the next job on it
            String next = s.submit("{\"task\": \"induction-2l\", \"algorithms\": [\"EAP\"], \"edge_counts\": [0, 3]}");
            assertEquals("succeeded", s.awaitFinal(next).get("state").asText());
        }
    }

    @Test
    void aJobThatFailsLeavesTheServerServing() throws Exception {
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")))) {
            // ground truth needs an official circuit, which a custom task does not have: it fails inside the run
            String id = s.submit("{\"model\": \"induction-2l\", \"dataset\": \"induction.json\", "
                + "\"algorithms\": [\"Official Circuit\"]}");
            JsonNode failed = s.awaitFinal(id);
            assertEquals("failed", failed.get("state").asText(), failed.toString());
            assertTrue(failed.get("error").asText().contains("official"), failed.toString());
            // an edge count beyond the graph fails the job with the reason, before any scoring
            String big = s.submit("{\"task\": \"induction-2l\", \"edge_counts\": [100000]}");
            JsonNode bigFailed = s.awaitFinal(big);
            assertEquals("failed", bigFailed.get("state").asText());
            assertTrue(bigFailed.get("error").asText().contains("100000 is outside"), bigFailed.toString());
            String ok = s.submit(TINY_JOB);
            assertEquals("succeeded", s.awaitFinal(ok).get("state").asText());
        }
    }

    @Test
    void finishedJobsSurviveARestartAndUnfinishedOnesAreMarkedFailed() throws Exception {
        Path state = tmp.resolve("state");
        String id;
        String resultBefore;
        try (TestServer s = new TestServer(TestServer.config(state))) {
            id = s.submit(TINY_JOB);
            assertEquals("succeeded", s.awaitFinal(id).get("state").asText());
            resultBefore = s.get("/jobs/" + id + "/result").body();
        }
        // a record left "running" by a server that died (written as the server writes it)
        Path dead = state.resolve("jobs/00000000deadbeef");
        Files.createDirectories(dead);
        Files.writeString(dead.resolve("job.json"), TestServer.JSON.writeValueAsString(Map.of("id", "00000000deadbeef",
            "state", "running", "created_at", "2026-01-01T00:00:00Z", "started_at", "2026-01-01T00:00:01Z",
            "request", Map.of("task", "induction-2l"))));
        // and a half-written temp file next to a record, which must be ignored
        Files.writeString(dead.resolve(".job.json.123.tmp"), "{\"id\": \"0000");

        try (TestServer s = new TestServer(TestServer.config(state))) {
            JsonNode list = TestServer.json(s.get("/jobs")).get("jobs");
            assertEquals(2, list.size(), list.toString());
            JsonNode kept = TestServer.json(s.get("/jobs/" + id));
            assertEquals("succeeded", kept.get("state").asText());
            assertEquals(resultBefore, s.get("/jobs/" + id + "/result").body());
            assertEquals(200, s.get("/jobs/" + id + "/report").statusCode());
            JsonNode died = TestServer.json(s.get("/jobs/00000000deadbeef"));
            assertEquals("failed", died.get("state").asText());
            assertTrue(died.get("error").asText().contains("server stopped while this job was running"), died.toString());
            // deleting a finished job removes it and its files
            assertEquals(200, s.delete("/jobs/" + id).statusCode());
            assertEquals(404, s.get("/jobs/" + id).statusCode());
            assertFalse(Files.exists(state.resolve("jobs/" + id)));
        }
        try (TestServer s = new TestServer(TestServer.config(state))) {
            JsonNode list = TestServer.json(s.get("/jobs")).get("jobs");
            assertEquals(1, list.size());
            assertEquals("failed", list.get(0).get("state").asText(), "the failed mark was written back");
            assertNotNull(list.get(0).get("error").asText());
        }
    }

    @Test
    void stoppingTheServerCancelsRunningJobsAndSaysWhy() throws Exception {
        Path state = tmp.resolve("state");
        String id;
        try (TestServer s = new TestServer(TestServer.config(state))) {
            id = s.submit("{\"task\": \"induction-2l\", \"algorithms\": [\"ACDC\", \"EAP\"]}");
            s.await(id, Set.of("running"), Duration.ofSeconds(60));
        }
        JsonNode record = TestServer.JSON.readTree(state.resolve("jobs/" + id + "/job.json").toFile());
        assertEquals("cancelled", record.get("state").asText(), record.toString());
        assertTrue(record.get("error").asText().startsWith("the server stopped"), record.toString());
        assertFalse(Files.exists(state.resolve("jobs/" + id + "/result.json")));
    }

    @Test
    void loadedModelsAreBoundedLeastRecentlyUsedFirst() throws Exception {
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("a")).withModelBounds(1, 1L << 30))) {
            assertEquals("succeeded", s.awaitFinal(s.submit(TINY_JOB)).get("state").asText());
            assertEquals("induction-2l", TestServer.json(s.get("/health")).get("loaded_models").get(0).get("task").asText());
            assertEquals("succeeded", s.awaitFinal(s.submit(CUSTOM_JOB)).get("state").asText());
            JsonNode loaded = TestServer.json(s.get("/health")).get("loaded_models");
            assertEquals(1, loaded.size(), loaded.toString());
            assertEquals("custom", loaded.get(0).get("task").asText(), "the older one was closed");
        }
        // a byte bound below one model's weights keeps nothing loaded once the job is done
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("b")).withModelBounds(4, 1))) {
            assertEquals("succeeded", s.awaitFinal(s.submit(TINY_JOB)).get("state").asText());
            assertEquals(0, TestServer.json(s.get("/health")).get("loaded_models").size());
        }
    }
}
