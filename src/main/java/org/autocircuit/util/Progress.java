package org.autocircuit.util;

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

    /** Throws {@link java.util.concurrent.CancellationException} if the current thread was interrupted. */
    static void checkInterrupted(String task) {
        if (Thread.currentThread().isInterrupted()) {
            throw new java.util.concurrent.CancellationException(task + " was interrupted");
        }
    }
}
