package org.autocircuit.cli;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.autocircuit.util.Progress;

/**
 * Shows the library's {@link Progress} reports on stderr (stdout stays clean for {@code --json}): a progress bar per
 * task on an interactive terminal, otherwise one line when a task starts and one when it ends, so CI logs stay short.
 * Closing it finishes every open bar.
 */
final class ConsoleProgress implements Progress, AutoCloseable {
    private final boolean interactive;
    private final PrintStream err;
    private final Map<String, ProgressBar> bars = new LinkedHashMap<>();
    private final Map<String, Long> started = new LinkedHashMap<>();

    ConsoleProgress(boolean quiet) {
        this.interactive = !quiet && System.console() != null;
        this.err = quiet ? null : System.err;
    }

    @Override
    public synchronized void update(String task, long done, long total) {
        Progress.checkInterrupted(task);
        if (err == null) return;
        if (interactive) {
            ProgressBar bar = bars.computeIfAbsent(task, t -> new ProgressBarBuilder().setTaskName(shorten(t))
                .setInitialMax(total).setStyle(ProgressBarStyle.ASCII)
                .setConsumer(new ConsoleProgressBarConsumer(err)).build());
            bar.maxHint(total);
            bar.stepTo(done);
            if (done >= total) bars.remove(task).close();
            return;
        }
        if (!started.containsKey(task)) {
            started.put(task, System.nanoTime());
            err.printf("%s: %d steps%n", task, total);
        }
        if (done >= total) {
            long t0 = started.remove(task);
            err.printf("%s: done in %.1f s%n", task, (System.nanoTime() - t0) / 1e9);
        }
    }

    private static String shorten(String task) {
        return task.length() <= 28 ? task : task.substring(0, 27) + "…";
    }

    @Override
    public synchronized void close() {
        bars.values().forEach(ProgressBar::close);
        bars.clear();
    }
}
