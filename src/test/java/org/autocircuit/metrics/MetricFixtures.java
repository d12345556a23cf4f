package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;

/** Hand-built batches, answers and contexts for the metric tests. */
final class MetricFixtures {
    private MetricFixtures() {}

    /** Stacked int64 answers {@code [batch, nAns]}. */
    static Answers stacked(long[][] rows) {
        int n = rows[0].length;
        long[] flat = new long[rows.length * n];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * n, n);
        return new Answers.Stacked(HostTensor.ofLongs(flat, rows.length, n));
    }

    /** Ragged answers: one 1-D tensor per prompt, never stacked (even when the lengths agree). */
    static Answers ragged(long[][] rows) {
        List<HostTensor> prompts = new ArrayList<>();
        for (long[] r : rows) prompts.add(HostTensor.ofLongs(r, r.length));
        return new Answers.Ragged(prompts);
    }

    /** A batch whose prompts are dummies: only the answers matter to the metrics. */
    static PromptPairBatch batch(long key, Answers answers, Answers wrong) {
        int b = answers.batchSize();
        HostTensor tokens = HostTensor.ofLongs(new long[b], b, 1);
        return new PromptPairBatch(key, 0, tokens, tokens, null, null, answers, wrong);
    }

    static HostTensor floats(float[][] rows) {
        int n = rows[0].length;
        float[] flat = new float[rows.length * n];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * n, n);
        return HostTensor.ofFloats(flat, rows.length, n);
    }

    /** A context backed by fixed clean/corrupt outputs per batch key. */
    static final class FixedContext implements MetricContext {
        private final List<PromptPairBatch> batches;
        private final Map<Long, HostTensor> clean = new HashMap<>();
        private final Map<Long, HostTensor> corrupt = new HashMap<>();

        FixedContext(List<PromptPairBatch> batches) {
            this.batches = List.copyOf(batches);
        }

        FixedContext clean(long key, HostTensor out) {
            clean.put(key, out);
            return this;
        }

        FixedContext corrupt(long key, HostTensor out) {
            corrupt.put(key, out);
            return this;
        }

        @Override public List<PromptPairBatch> testBatches() { return batches; }

        @Override public HostTensor cleanOutput(PromptPairBatch batch) { return get(clean, batch); }

        @Override public HostTensor corruptOutput(PromptPairBatch batch) { return get(corrupt, batch); }

        private static HostTensor get(Map<Long, HostTensor> m, PromptPairBatch batch) {
            HostTensor t = m.get(batch.key());
            if (t == null) throw new IllegalStateException("no output for batch " + batch.key());
            return t;
        }
    }
}
