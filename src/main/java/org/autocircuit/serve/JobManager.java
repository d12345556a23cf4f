package org.autocircuit.serve;

import java.io.IOException;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.autocircuit.algorithms.RegisteredAlgorithm;
import org.autocircuit.discovery.Discovery;
import org.autocircuit.report.DiscoveryResult;

/**
 * Queues and runs jobs: at most {@code maxJobs} at once on worker threads, the rest waiting in order (at most
 * {@code maxQueued}). A job loads (or reuses) its task through the {@link ModelCache}, waits for its turn on it,
 * runs {@link Discovery#run} (what {@code autocircuit discover} runs), and writes its result to the
 * {@link JobStore}.
 *
 * <p>Cancelling sets a flag the job's progress reports check: the run stops at its next step with a
 * {@link CancellationException}, and the library's scopes free the native memory of that step on the way out. A job
 * that fails with anything but bad input closes the loaded task it used (its state is unknown) once no other job
 * holds it; no failure reaches the server's own threads.
 */
final class JobManager implements AutoCloseable {
    private final JobStore store;
    private final ModelCache models;
    private final Catalog catalog;
    private final int maxQueued;
    private final ThreadPoolExecutor workers;
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final SecureRandom random = new SecureRandom();
    private final AtomicInteger runningCount = new AtomicInteger();

    JobManager(JobStore store, ModelCache models, Catalog catalog, int maxJobs, int maxQueued) throws IOException {
        this.store = store;
        this.models = models;
        this.catalog = catalog;
        this.maxQueued = maxQueued;
        AtomicInteger n = new AtomicInteger();
        this.workers = new ThreadPoolExecutor(maxJobs, maxJobs, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "autocircuit-job-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        for (Job j : store.restore()) jobs.put(j.id(), j);
    }

    /**
     * Queues a validated request and returns its job at once.
     *
     * @throws ApiException 429 when the queue is full
     */
    Job submit(JobRequest request) throws IOException {
        Job job;
        synchronized (this) {
            if (workers.getQueue().size() >= maxQueued) {
                throw new ApiException(429, null, "the queue is full (" + maxQueued + " jobs waiting); retry later");
            }
            String id;
            do {
                byte[] b = new byte[8];
                random.nextBytes(b);
                id = HexFormat.of().formatHex(b);
            } while (jobs.containsKey(id));
            job = new Job(id, request.json(), Instant.now());
            store.save(job);
            jobs.put(id, job);
        }
        Job submitted = job;
        workers.execute(() -> run(submitted, request));
        return job;
    }

    synchronized Job get(String id) {
        return jobs.get(id);
    }

    synchronized List<Job> list() {
        return new ArrayList<>(jobs.values());
    }

    /** Jobs per state, and how many loaded tasks are kept. */
    synchronized Map<String, Object> counts() {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Job.State s : Job.State.values()) m.put(s.json(), 0);
        for (Job j : jobs.values()) m.merge(j.state().json(), 1, (a, b) -> (Integer) a + (Integer) b);
        return m;
    }

    /**
     * Cancels a queued or running job (true), or deletes a finished one with its files (false).
     */
    boolean cancelOrDelete(Job job) throws IOException {
        if (job.requestCancel("cancelled")) {
            if (job.state() == Job.State.CANCELLED) store.save(job);
            return true;
        }
        synchronized (this) {
            jobs.remove(job.id());
        }
        store.delete(job.id());
        return false;
    }

    private void run(Job job, JobRequest request) {
        if (!job.start()) return; // cancelled while queued
        runningCount.incrementAndGet();
        long t0 = System.nanoTime();
        try {
            save(job);
            try (ModelCache.Lease lease = models.acquire(request.task(), request.load())) {
                try {
                    if (!lease.awaitTurn(job::cancelRequested)) throw new CancellationException("cancelled");
                    DiscoveryResult result = Discovery.run(lease.task(), catalog.taskPaths(), request.options(),
                        new JobProgress(job, request.options().algorithms().size()), t0);
                    store.saveResult(job.id(), result);
                    job.finish(Job.State.SUCCEEDED, null);
                } catch (CancellationException e) {
                    job.finish(Job.State.CANCELLED, job.cancelReason() + " while it was running");
                } catch (IllegalArgumentException | UnsupportedOperationException e) {
                    job.finish(Job.State.FAILED, e.getMessage());
                } catch (Throwable e) {
                    lease.discard();
                    job.finish(Job.State.FAILED, "the job crashed: " + e
                        + org.autocircuit.kernels.AutoCircuitNativeException.outOfMemoryAdvice(e));
                }
            }
        } catch (CancellationException e) {
            job.finish(Job.State.CANCELLED, job.cancelReason() + " while it was loading its model");
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            job.finish(Job.State.FAILED, "cannot load the task: " + e.getMessage());
        } catch (Throwable e) {
            job.finish(Job.State.FAILED, "the job crashed while loading its task: " + e
                + org.autocircuit.kernels.AutoCircuitNativeException.outOfMemoryAdvice(e));
        } finally {
            runningCount.decrementAndGet();
            Thread.interrupted(); // never leave an interrupt on a pooled worker
            save(job);
        }
    }

    private void save(Job job) {
        try {
            store.save(job);
        } catch (IOException e) {
            System.err.println("autocircuit serve: cannot save job " + job.id() + ": " + e.getMessage());
        }
    }

    /** Reports a job's progress on it and stops the run at its next step once cancelling was asked for. */
    private static final class JobProgress implements Discovery.Listener {
        private final Job job;
        private final int algorithms;

        JobProgress(Job job, int algorithms) {
            this.job = job;
            this.algorithms = algorithms;
        }

        @Override
        public void update(String task, long done, long total) {
            if (job.cancelRequested()) throw new CancellationException(task + " was cancelled");
            job.step(task, done, total, algorithms);
        }

        @Override
        public void algorithmStarted(int index, int count, RegisteredAlgorithm algorithm) {
            if (job.cancelRequested()) throw new CancellationException("cancelled");
            job.algorithm(index, count, algorithm.key());
        }
    }

    int running() {
        return runningCount.get();
    }

    /**
     * Stops taking jobs, cancels the queued and running ones, and waits up to {@code waitSeconds} for them to stop.
     */
    void shutdown(long waitSeconds) {
        workers.shutdown();
        for (Job j : list()) {
            if (j.requestCancel("the server stopped") && j.state() == Job.State.CANCELLED) save(j);
        }
        try {
            workers.awaitTermination(waitSeconds, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        shutdown(30);
    }

    ExecutorService workers() {
        return workers;
    }
}
