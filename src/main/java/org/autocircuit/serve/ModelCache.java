package org.autocircuit.serve;

import org.autocircuit.kernels.Device;
import org.bytedeco.pytorch.global.torch;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;

/**
 * Loaded tasks (a model's weights as a patchable model, the tokenized prompts, the graph) shared by the jobs that
 * use them, so a model is loaded once however many jobs run on it.
 *
 * <p>A {@link LoadedTask} is keyed by its {@link Task} (model folder, dataset, batching, graph layout). A patchable
 * model is not thread-safe and the algorithms set its masks, so jobs on one loaded task take turns on its
 * {@link Lease#runLock()}; jobs on different ones run in parallel. Loaded tasks no job holds are kept for reuse up to
 * {@code maxLoaded} tasks and {@code maxBytes} of weight files, least recently used closed first (closing frees the
 * native memory at once). A task a job is using is never closed under it: the bound may be exceeded while every
 * loaded task is in use, and is restored as they are released.
 */
final class ModelCache implements AutoCloseable {
    private final TaskPaths paths;
    private final int maxLoaded;
    private final long maxBytes;
    private final Map<Key, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);

    /**
     * How a task's model is loaded. Jobs share a loaded model only when these agree too: the same folder with TL
     * weight processing, or with the other GQA layout, is another model and another graph; on another device, or in
     * another dtype, it is another copy of the weights.
     */
    record LoadOptions(WeightProcessing processing, GqaLayout layout, Device device, torch.ScalarType dtype) {
        static final LoadOptions DEFAULT = new LoadOptions(WeightProcessing.NONE, GqaLayout.UNGROUPED);

        LoadOptions(WeightProcessing processing, GqaLayout layout) {
            this(processing, layout, Device.CPU, torch.ScalarType.Float);
        }

        LoadOptions {
            Objects.requireNonNull(processing, "processing");
            Objects.requireNonNull(layout, "layout");
            Objects.requireNonNull(device, "device");
            Objects.requireNonNull(dtype, "dtype");
            dtype = dtype.intern();
        }
    }

    private record Key(Task task, LoadOptions load) {}
    private boolean closed;

    private static final class Entry {
        final Key key;
        final Task task;
        final ReentrantLock runLock = new ReentrantLock(true);
        final Object loadLock = new Object();
        LoadedTask loaded;
        long bytes;
        int refs;
        boolean discarded;

        Entry(Key key) {
            this.key = key;
            this.task = key.task();
        }
    }

    /** One job's hold on a loaded task; closing it releases the hold (and the run lock, if held). */
    final class Lease implements AutoCloseable {
        private final Entry entry;
        private boolean released;

        private Lease(Entry entry) {
            this.entry = entry;
        }

        LoadedTask task() {
            return entry.loaded;
        }

        /**
         * Waits for this task's turn, checking {@code cancelled} every 100 ms.
         *
         * @return false if cancelled while waiting
         */
        boolean awaitTurn(BooleanSupplier cancelled) throws InterruptedException {
            while (!entry.runLock.tryLock(100, TimeUnit.MILLISECONDS)) {
                if (cancelled.getAsBoolean()) return false;
            }
            return true;
        }

        /** The loaded task may be in an unknown state (a job failed inside it): close it once no job holds it. */
        void discard() {
            synchronized (ModelCache.this) {
                entry.discarded = true;
            }
        }

        @Override
        public void close() {
            if (released) return;
            released = true;
            if (entry.runLock.isHeldByCurrentThread()) entry.runLock.unlock();
            release(entry);
        }
    }

    ModelCache(TaskPaths paths, int maxLoaded, long maxBytes) {
        this.paths = paths;
        this.maxLoaded = maxLoaded;
        this.maxBytes = maxBytes;
    }

    /**
     * The loaded task for {@code task}, loading it on first use (other jobs asking for the same task meanwhile wait
     * for that one load).
     *
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException for bad content (from {@link LoadedTask#load})
     */
    Lease acquire(Task task) throws IOException {
        return acquire(task, LoadOptions.DEFAULT);
    }

    /** {@link #acquire(Task)} for a model loaded with {@code load}'s weight processing and GQA layout. */
    Lease acquire(Task task, LoadOptions load) throws IOException {
        Entry e;
        synchronized (this) {
            if (closed) throw new IllegalStateException("the server is stopping");
            e = entries.computeIfAbsent(new Key(task, load), Entry::new);
            e.refs++;
        }
        try {
            synchronized (e.loadLock) {
                if (e.loaded == null) {
                    // null kernels: the device's own (Kernels.best() on the CPU)
                    e.loaded = LoadedTask.load(task, paths, null, load.processing(), load.layout(), load.device(),
                        load.dtype());
                    Path weights = task.modelPath(paths).resolve("model.safetensors");
                    e.bytes = Files.isRegularFile(weights) ? Files.size(weights) : 0;
                }
            }
        } catch (IOException | RuntimeException | Error ex) {
            release(e);
            throw ex;
        }
        synchronized (this) {
            evict();
        }
        return new Lease(e);
    }

    private synchronized void release(Entry e) {
        e.refs--;
        if (e.refs == 0 && (e.discarded || e.loaded == null || closed)) {
            entries.remove(e.key, e);
            if (e.loaded != null) e.loaded.close();
            e.loaded = null;
        }
        evict();
    }

    /** Closes least recently used idle tasks while over a bound. */
    private void evict() {
        List<Entry> order = new ArrayList<>(entries.values());
        for (Entry e : order) {
            if (loadedCount() <= maxLoaded && loadedBytes() <= maxBytes) return;
            if (e.refs == 0 && e.loaded != null) {
                entries.remove(e.key);
                e.loaded.close();
                e.loaded = null;
            }
        }
    }

    private int loadedCount() {
        int n = 0;
        for (Entry e : entries.values()) if (e.loaded != null) n++;
        return n;
    }

    private long loadedBytes() {
        long n = 0;
        for (Entry e : entries.values()) if (e.loaded != null) n += e.bytes;
        return n;
    }

    /** What is loaded now: task key, model path, jobs holding it. */
    synchronized List<Map<String, Object>> describe() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Entry e : entries.values()) {
            if (e.loaded == null) continue;
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("task", e.task.key());
            m.put("weight_processing", e.key.load().processing().name().toLowerCase(java.util.Locale.ROOT));
            m.put("gqa_layout", e.key.load().layout().name().toLowerCase(java.util.Locale.ROOT));
            m.put("device", e.key.load().device().toString());
            m.put("dtype", e.key.load().dtype().name().toLowerCase(java.util.Locale.ROOT));
            m.put("model", e.task.modelPath(paths).getFileName().toString());
            m.put("dataset", e.task.datasetPath(paths).getFileName().toString());
            m.put("weights_bytes", e.bytes);
            m.put("jobs_using", e.refs);
            out.add(m);
        }
        return out;
    }

    synchronized int loaded() {
        return loadedCount();
    }

    /** Closes every task no job holds; the rest close as their jobs release them. */
    @Override
    public synchronized void close() {
        closed = true;
        for (Entry e : new ArrayList<>(entries.values())) {
            if (e.refs == 0) {
                entries.remove(e.key);
                if (e.loaded != null) e.loaded.close();
                e.loaded = null;
            }
        }
    }
}
