package org.autocircuit.data;

import java.util.List;
import org.autocircuit.util.HostTensor;

/**
 * The answers (or wrong answers) of a batch of prompts, as AutoCircuit stacks them.
 *
 * <p>When every prompt has the same number of answers they form one tensor {@code [batch, nAns]}
 * (tracr: {@code [batch, 5, 1]}); otherwise they stay a ragged list of 1-D tensors, one per prompt,
 * and every answer function takes its slower per-prompt path.
 */
public sealed interface Answers {
    /** Number of prompts. */
    int batchSize();

    /** Answers of prompt {@code i} as a 1-D (or, for tracr, 2-D) tensor. */
    HostTensor prompt(int i);

    /** The answers of prompts {@code [start, start + count)}, in the same form. */
    Answers rows(int start, int count);

    /** Every prompt has the same answer shape: one stacked tensor. */
    record Stacked(HostTensor values) implements Answers {
        public Stacked {
            if (values.dim() < 2) {
                throw new IllegalArgumentException("stacked answers need shape [batch, nAns...], got " + values);
            }
        }

        @Override public int batchSize() { return (int) values.size(0); }

        @Override public HostTensor prompt(int i) { return values.row(i); }

        @Override public Answers rows(int start, int count) { return new Stacked(values.rows(start, count)); }
    }

    /** Prompts have different numbers of answers: one 1-D tensor per prompt. */
    record Ragged(List<HostTensor> values) implements Answers {
        public Ragged {
            values = List.copyOf(values);
        }

        @Override public int batchSize() { return values.size(); }

        @Override public HostTensor prompt(int i) { return values.get(i); }

        @Override public Answers rows(int start, int count) {
            return new Ragged(values.subList(start, Math.addExact(start, count)));
        }
    }

    /** Stacks when all shapes agree, as AutoCircuit's collate function does. */
    static Answers of(List<HostTensor> perPrompt) {
        if (perPrompt.isEmpty()) throw new IllegalArgumentException("a batch needs at least one prompt");
        long[] first = perPrompt.get(0).shape();
        boolean same = perPrompt.stream().allMatch(t -> java.util.Arrays.equals(t.shape(), first));
        if (!same) return new Ragged(perPrompt);
        HostTensor.DType dtype = perPrompt.get(0).dtype();
        long[] shape = new long[first.length + 1];
        shape[0] = perPrompt.size();
        System.arraycopy(first, 0, shape, 1, first.length);
        if (dtype == HostTensor.DType.INT64) {
            long[] all = new long[(int) (perPrompt.size() * perPrompt.get(0).numel())];
            int at = 0;
            for (HostTensor t : perPrompt) {
                long[] v = t.longs();
                System.arraycopy(v, 0, all, at, v.length);
                at += v.length;
            }
            return new Stacked(HostTensor.ofLongs(all, shape));
        }
        float[] all = new float[(int) (perPrompt.size() * perPrompt.get(0).numel())];
        int at = 0;
        for (HostTensor t : perPrompt) {
            float[] v = t.floats();
            System.arraycopy(v, 0, all, at, v.length);
            at += v.length;
        }
        return new Stacked(HostTensor.ofFloats(all, shape));
    }
}
