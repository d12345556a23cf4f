package org.autocircuit.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Load and memory over real HTTP: status calls from several client threads while two jobs run at once, and many
 * jobs (some cancelled mid-run) on a shared model with the process's resident memory measured before and after.
 * The figures are printed (docs/server.md quotes them).
 */
class ServerLoadTest {

    /** Two jobs that run at once: on different loaded tasks, so neither waits for the other's model. */
    static final String JOB_A = "{\"task\": \"induction-2l\", \"algorithms\": [\"ACDC\", \"EAP\", \"Random\"]}";
    static final String JOB_B = "{\"model\": \"induction-2l\", \"dataset\": \"induction.json\", "
        + "\"algorithms\": [\"ACDC\", \"EAP\"], \"batch_size\": 8, \"batch_count\": 2}";

    @TempDir
    Path tmp;

    @Test
    void statusCallsFromEightThreadsWhileTwoJobsRun() throws Exception {
        runLoad(200, 8);
    }

    @Test
    @Tag("slow")
    void twoThousandStatusCallsFromSixteenThreads() throws Exception {
        runLoad(2000, 16);
    }

    private void runLoad(int requests, int threads) throws Exception {
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")))) {
            // warm up: a job loads the native libraries and both models once, so RSS before counts them
            String warm = s.submit(JobsAndMemory.QUICK_JOB);
            assertEquals("succeeded", s.awaitFinal(warm).get("state").asText());
            System.gc();
            long rssBefore = TestServer.rssBytes();
            String a = s.submit(JOB_A);
            String b = s.submit(JOB_B);
            s.await(a, Set.of("running", "succeeded"), Duration.ofSeconds(60));
            s.await(b, Set.of("running", "succeeded"), Duration.ofSeconds(60));
            int runningAtStart = TestServer.json(s.get("/health")).get("running").asInt();

            List<Long> latenciesNanos = Collections.synchronizedList(new ArrayList<>());
            AtomicInteger failures = new AtomicInteger();
            AtomicInteger sent = new AtomicInteger();
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            List<Future<?>> futures = new ArrayList<>();
            long t0 = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                futures.add(pool.submit(() -> {
                    while (true) {
                        int i = sent.getAndIncrement();
                        if (i >= requests) return null;
                        String id = i % 2 == 0 ? a : b;
                        long r0 = System.nanoTime();
                        HttpResponse<String> r = s.get("/jobs/" + id);
                        latenciesNanos.add(System.nanoTime() - r0);
                        JsonNode got = r.statusCode() == 200 ? TestServer.json(r).get("id") : null;
                        if (got == null || !got.asText().equals(id)) {
                            failures.incrementAndGet();
                        }
                    }
                }));
            }
            for (Future<?> f : futures) f.get();
            pool.shutdown();
            double wall = (System.nanoTime() - t0) / 1e9;
            // the jobs are not needed past the load: cancel them. DELETE on a job that already finished deletes it
            // (200 with "deleted"), so only a job that was still running (202) is awaited.
            List<String> ends = new ArrayList<>();
            for (String id : List.of(a, b)) ends.add(cancelOrDeleted(s, id));
            System.gc();
            long rssAfter = TestServer.rssBytes();

            List<Long> sorted = new ArrayList<>(latenciesNanos);
            Collections.sort(sorted);
            double p50 = sorted.get(sorted.size() / 2) / 1e6;
            double p99 = sorted.get((int) Math.ceil(sorted.size() * 0.99) - 1) / 1e6;
            System.out.printf(Locale.ROOT, "serve load: %d status calls from %d threads in %.2f s against %d running "
                    + "jobs: %d failures, p50 %.2f ms, p99 %.2f ms, max %.2f ms; RSS %d MiB before, %d MiB after%n",
                requests, threads, wall, runningAtStart, failures.get(), p50, p99, sorted.get(sorted.size() - 1) / 1e6,
                rssBefore >> 20, rssAfter >> 20);
            assertEquals(requests, sorted.size(), "every request answered");
            assertEquals(0, failures.get());
            assertEquals(2, runningAtStart, "both jobs ran during the load");
            for (String end : ends) assertTrue(Set.of("deleted", "cancelled", "succeeded").contains(end), end);
            if (rssBefore > 0) {
                assertTrue(rssAfter - rssBefore < (512L << 20), "RSS grew from " + (rssBefore >> 20) + " to "
                    + (rssAfter >> 20) + " MiB");
            }
        }
    }

    /**
     * Cancels a job, or deletes it if it finished meanwhile; returns "deleted", or the final state it reached after
     * the cancel request (a job can still succeed between the request and its next step).
     */
    private static String cancelOrDeleted(TestServer s, String id) throws Exception {
        HttpResponse<String> r = s.delete("/jobs/" + id);
        if (r.statusCode() == 200) {
            assertTrue(TestServer.json(r).get("deleted").asBoolean(), r.body());
            assertEquals(404, s.get("/jobs/" + id).statusCode(), "a deleted job is gone");
            return "deleted";
        }
        assertEquals(202, r.statusCode(), r.body());
        return s.awaitFinal(id).get("state").asText();
    }

    /** Many jobs on one shared model, every third cancelled while running. */
    static final class JobsAndMemory {
        static final String QUICK_JOB = "{\"task\": \"induction-2l\", \"algorithms\": [\"EAP\", \"Random\"], "
            + "\"edge_counts\": [0, 10]}";
        static final String CANCELLED_JOB = "{\"task\": \"induction-2l\", \"algorithms\": [\"ACDC\"]}";
    }

    @Test
    void manyJobsAndCancellationsLeaveMemoryBounded() throws Exception {
        manyJobs(3, 9);
    }

    @Test
    @Tag("slow")
    void hundredsOfJobsLeaveMemoryBounded() throws Exception {
        manyJobs(10, 150);
    }

    private void manyJobs(int warmup, int jobs) throws Exception {
        try (TestServer s = new TestServer(TestServer.config(tmp.resolve("state")).withJobs(1, 64))) {
            for (int i = 0; i < warmup; i++) runOne(s, i);
            System.gc();
            long before = TestServer.rssBytes();
            int cancelled = 0;
            long t0 = System.nanoTime();
            for (int i = 0; i < jobs; i++) cancelled += runOne(s, i) ? 1 : 0;
            double seconds = (System.nanoTime() - t0) / 1e9;
            System.gc();
            long after = TestServer.rssBytes();
            System.out.printf(Locale.ROOT, "serve memory: %d jobs (%d cancelled mid-run) in %.1f s after %d warm-up "
                + "jobs: RSS %d MiB before, %d MiB after%n", jobs, cancelled, seconds, warmup, before >> 20, after >> 20);
            assertTrue(cancelled > 0, "some jobs were caught running and cancelled");
            JsonNode health = TestServer.json(s.get("/health"));
            assertEquals(1, health.get("loaded_models").size(), "one loaded task shared by all: " + health);
            if (before > 0) {
                // a leak of the patched activations (~MBs per job) would show over this many jobs
                assertTrue(after - before < (256L << 20), "RSS grew from " + (before >> 20) + " to " + (after >> 20)
                    + " MiB over " + jobs + " jobs");
            }
        }
    }

    /** Runs one job; every third is a long one cancelled once running. Returns whether it was cancelled. */
    private static boolean runOne(TestServer s, int i) throws Exception {
        if (i % 3 == 2) {
            String id = s.submit(JobsAndMemory.CANCELLED_JOB);
            JsonNode j = s.await(id, Set.of("running", "succeeded", "failed"), Duration.ofSeconds(60));
            assertTrue(Set.of("running", "succeeded").contains(j.get("state").asText()), j.toString());
            // the job may finish between the poll and the DELETE: then it is deleted instead of cancelled
            return cancelOrDeleted(s, id).equals("cancelled");
        }
        String id = s.submit(JobsAndMemory.QUICK_JOB);
        JsonNode end = s.awaitFinal(id);
        assertEquals("succeeded", end.get("state").asText(), end.toString());
        return false;
    }
}
