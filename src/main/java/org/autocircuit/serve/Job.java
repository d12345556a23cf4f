package org.autocircuit.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One job: its request, its state and its progress. The state and progress change on the job's worker thread and
 * are read by request threads, so every access goes through this object's monitor; {@link #version()} grows with
 * every change, and {@link #awaitChange} lets an event stream sleep until the next one.
 */
final class Job {

    /** The life of a job: QUEUED → RUNNING → one of the three final states (or QUEUED → CANCELLED). */
    enum State {
        QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED;

        boolean isFinal() {
            return this == SUCCEEDED || this == FAILED || this == CANCELLED;
        }

        String json() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private final String id;
    private final ObjectNode request;
    private final Instant created;
    private State state = State.QUEUED;
    private Instant started;
    private Instant finished;
    private String error;
    private volatile boolean cancelRequested;
    private String cancelReason = "cancelled";
    private long version;
    // progress
    private String algorithm;
    private int algorithmIndex = -1;
    private int algorithmCount;
    private String step;
    private long done;
    private long total;
    private double fraction;

    Job(String id, ObjectNode request, Instant created) {
        this.id = id;
        this.request = request;
        this.created = created;
    }

    /** A job read back from the state folder. */
    static Job restored(String id, ObjectNode request, Instant created, State state, Instant started, Instant finished,
                        String error) {
        Job j = new Job(id, request, created);
        j.state = state;
        j.started = started;
        j.finished = finished;
        j.error = error;
        j.fraction = state == State.SUCCEEDED ? 1.0 : 0.0;
        return j;
    }

    String id() {
        return id;
    }

    ObjectNode request() {
        return request;
    }

    synchronized State state() {
        return state;
    }

    synchronized long version() {
        return version;
    }

    boolean cancelRequested() {
        return cancelRequested;
    }

    synchronized String cancelReason() {
        return cancelReason;
    }

    /**
     * Asks the job to stop; a queued job is cancelled at once, a running one at its next step.
     *
     * @param reason who asked ("cancelled", "the server stopped"), kept as the job's error
     */
    synchronized boolean requestCancel(String reason) {
        if (state.isFinal()) return false;
        cancelRequested = true;
        cancelReason = reason;
        if (state == State.QUEUED) finish(State.CANCELLED, reason + " before it started");
        changed();
        return true;
    }

    synchronized boolean start() {
        if (state != State.QUEUED) return false;
        state = State.RUNNING;
        started = Instant.now();
        changed();
        return true;
    }

    synchronized void finish(State s, String why) {
        if (state.isFinal()) return;
        state = s;
        error = why;
        finished = Instant.now();
        if (s == State.SUCCEEDED) fraction = 1.0;
        changed();
    }

    synchronized void algorithm(int index, int count, String key) {
        algorithm = key;
        algorithmIndex = index;
        algorithmCount = count;
        step = null;
        done = 0;
        total = 0;
        fraction = Math.max(fraction, (index + 1.0) / (count + 1.0));
        changed();
    }

    /**
     * A step of the current stage. The overall fraction counts the shared measurement of the empty and full
     * circuits as one unit and each algorithm as one (its scoring the first half, its run_circuits the second).
     */
    synchronized void step(String name, long stepsDone, long stepsTotal, int algorithmsInJob) {
        step = name;
        done = stepsDone;
        total = stepsTotal;
        double within = stepsTotal <= 0 ? 0 : Math.min(1.0, (double) stepsDone / stepsTotal);
        double unit;
        if (algorithmIndex < 0) {
            unit = within;
        } else {
            boolean measuring = "run_circuits".equals(name);
            unit = algorithmIndex + 1 + (measuring ? 0.5 + 0.5 * within : 0.5 * within);
        }
        fraction = Math.max(fraction, Math.min(0.999, unit / (algorithmsInJob + 1.0)));
        changed();
    }

    private void changed() {
        version++;
        notifyAll();
    }

    /** Waits until the version passes {@code seen} or the timeout ends; returns the version then. */
    synchronized long awaitChange(long seen, long timeoutMillis) throws InterruptedException {
        long end = System.currentTimeMillis() + timeoutMillis;
        while (version == seen) {
            long left = end - System.currentTimeMillis();
            if (left <= 0) break;
            wait(left);
        }
        return version;
    }

    /** The job as the API shows it. */
    synchronized Map<String, Object> toJson(boolean withRequest) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("state", state.json());
        m.put("created_at", created.toString());
        m.put("started_at", started == null ? null : started.toString());
        m.put("finished_at", finished == null ? null : finished.toString());
        m.put("error", error);
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("algorithm", algorithm);
        p.put("algorithm_index", algorithmIndex < 0 ? null : algorithmIndex);
        p.put("algorithm_count", algorithmCount == 0 ? null : algorithmCount);
        p.put("step", step);
        p.put("step_done", done);
        p.put("step_total", total);
        p.put("fraction", fraction);
        Instant end = finished != null ? finished : Instant.now();
        p.put("elapsed_seconds", started == null ? 0.0 : (end.toEpochMilli() - started.toEpochMilli()) / 1000.0);
        m.put("progress", p);
        Map<String, String> links = new LinkedHashMap<>();
        links.put("self", "/jobs/" + id);
        links.put("events", "/jobs/" + id + "/events");
        if (state == State.SUCCEEDED) {
            links.put("result", "/jobs/" + id + "/result");
            links.put("report", "/jobs/" + id + "/report");
        }
        m.put("links", links);
        if (withRequest) m.put("request", request);
        return m;
    }

    /** What the state folder keeps (no progress: a restarted server shows final states only). */
    synchronized Map<String, Object> record() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("state", state.json());
        m.put("created_at", created.toString());
        m.put("started_at", started == null ? null : started.toString());
        m.put("finished_at", finished == null ? null : finished.toString());
        m.put("error", error);
        m.put("request", request);
        return m;
    }
}
