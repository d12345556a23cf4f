package org.autocircuit.util;

import java.util.concurrent.atomic.AtomicReference;

/**
 * Progress of a long computation, reported as steps done out of a total. The CLI shows a bar; library
 * callers may log it or ignore it ({@link #NONE}). Implementations may throw to cancel the work
 * (for example when the thread is interrupted); callers keep the work they had finished.
 */
@FunctionalInterface
public interface Progress {
    /**
     * @param task  what is running ("run_circuits", "ACDC τ=0.001", ...)
     * @param done  steps finished
     * @param total steps in all
     */
    void update(String task, long done, long total);

    Progress NONE = (task, done, total) -> {};

    /**
     * Throws {@link java.util.concurrent.CancellationException} if the current thread was interrupted or a stop was
     * {@linkplain StopRequest#request requested} for the whole process (the command line does on SIGINT/SIGTERM).
     * Long loops call this once per step, so work stops at a step boundary and resumable algorithms can save it.
     */
    static void checkInterrupted(String task) {
        String why = StopRequest.reason();
        if (why != null) {
            throw new java.util.concurrent.CancellationException(task + " was stopped (" + why + ")");
        }
        if (Thread.currentThread().isInterrupted()) {
            throw new java.util.concurrent.CancellationException(task + " was interrupted");
        }
    }

    /**
     * A process-wide request to stop at the next step. A flag rather than {@link Thread#interrupt}: an interrupt
     * also closes any file channel the thread is using, which would break the very checkpoint write that saves
     * the work.
     */
    final class StopRequest {
        private static final AtomicReference<String> REASON = new AtomicReference<>();

        private StopRequest() {}

        /** Asks every running loop to stop at its next {@link #checkInterrupted} (the first reason is kept). */
        public static void request(String reason) {
            REASON.compareAndSet(null, reason);
        }

        /** Why a stop was requested, or null. */
        public static String reason() {
            return REASON.get();
        }

        /** Withdraws the request (tests, and a command line that runs several commands in one process). */
        public static void clear() {
            REASON.set(null);
        }
    }
}
