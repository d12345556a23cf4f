package org.autocircuit.algorithms;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CancellationException;
import java.util.function.Supplier;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;

/**
 * Automatic Circuit DisCovery (Conmy et al., 2023), AutoCircuit's {@code acdc_prune_scores}.
 *
 * <p>Starting from the full model, ACDC visits the edges from the output backwards (destinations in the last
 * layer first) and ablates each one in turn. If ablating it moves the output away from the clean model's by less
 * than a threshold τ (KL divergence or mean squared error, measured against the last accepted state), the edge
 * stays ablated; otherwise it is restored. This is repeated for every τ, each pass starting from the full model.
 * The score of an edge is the smallest τ at which it was removed, and +∞ if no τ removed it, so larger scores
 * are more important edges and the edges at +∞ form the circuit of the smallest τ.
 *
 * <p>Only the first training batch is used; the ablation values are the corrupt prompts' source outputs
 * (RESAMPLE). See docs/algorithms/acdc.md for the visit order, the exact rules that let a pass skip forward
 * passes without changing any decision, and the checkpoint format.
 */
public final class Acdc {
    private Acdc() {}

    /** How far the patched output is from the clean one. */
    public enum Faithfulness {
        /** Mean over output rows of KL(clean ‖ patched) of the log-softmaxed outputs ({@code multibatch_kl_div}). */
        KL_DIV,
        /** Mean squared error between the patched and the clean outputs (logits). */
        MSE;

        public static Faithfulness parse(String s) {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        }
    }

    /**
     * The parameters of one ACDC run.
     *
     * @param taus               the thresholds, in the order the passes run (AutoCircuit:
     *                           {@code [a·10^b for a in bases for b in exps]}); each finite and &gt; 0
     * @param faithfulness       the distance between the patched and the clean output
     * @param visitOrder         an explicit edge order ({@link Edge#toString()} spellings: {@code "A0.1->MLP 1"},
     *                           or {@code "A0.1->MLP 1@3"} in token graphs), holding every edge once and sorted by
     *                           destination layer descending; null for the library's own order
     * @param checkpointEdges    with a checkpoint file: write it after this many decisions (≥ 1)
     * @param checkpointInterval with a checkpoint file: or when this much time has passed since the last write
     */
    public record Options(List<Double> taus, Faithfulness faithfulness, List<String> visitOrder,
                          int checkpointEdges, Duration checkpointInterval) {
        public Options {
            if (taus == null || taus.isEmpty()) {
                throw new IllegalArgumentException("taus must hold at least one threshold, got " + taus);
            }
            for (Double t : taus) {
                if (t == null || t.isNaN() || t.isInfinite() || t <= 0) {
                    throw new IllegalArgumentException("every tau must be finite and > 0, got " + t + " in " + taus);
                }
            }
            taus = List.copyOf(taus);
            if (faithfulness == null) throw new IllegalArgumentException("faithfulness must not be null");
            visitOrder = visitOrder == null ? null : List.copyOf(visitOrder);
            if (checkpointEdges < 1) {
                throw new IllegalArgumentException("checkpointEdges must be >= 1, got " + checkpointEdges);
            }
            if (checkpointInterval == null || checkpointInterval.isNegative()) {
                throw new IllegalArgumentException("checkpointInterval must be >= 0, got " + checkpointInterval);
            }
        }

        /** The given thresholds, the library's visit order, a checkpoint every 256 edges or 30 s. */
        public static Options of(List<Double> taus, Faithfulness faithfulness) {
            return new Options(taus, faithfulness, null, 256, Duration.ofSeconds(30));
        }

        /** AutoCircuit's parametrisation: {@code [a·10^b for a in bases for b in exps]} (bases outer). */
        public static Options ofBasesExps(List<Double> bases, List<Integer> exps, Faithfulness faithfulness) {
            if (bases == null || bases.isEmpty() || exps == null || exps.isEmpty()) {
                throw new IllegalArgumentException("tau bases and exps must both be non-empty, got bases " + bases
                    + " and exps " + exps);
            }
            List<Double> taus = new ArrayList<>();
            for (Double a : bases) {
                if (a == null) throw new IllegalArgumentException("tau base null in " + bases);
                for (Integer b : exps) {
                    if (b == null) throw new IllegalArgumentException("tau exponent null in " + exps);
                    taus.add(a * Math.pow(10, b));
                }
            }
            return of(taus, faithfulness);
        }

        /** The registry's "ACDC": τ ∈ {1e-6, 1e-5, 1e-4, 1e-3}, KL divergence. */
        public static Options acdc() {
            return ofBasesExps(List.of(1.0), List.of(-6, -5, -4, -3), Faithfulness.KL_DIV);
        }

        /** The registry's "MSE ACDC": τ ∈ {1e-10, …, 1e-1}, mean squared error. */
        public static Options mseAcdc() {
            List<Integer> exps = new ArrayList<>();
            for (int e = -10; e <= -1; e++) exps.add(e);
            return ofBasesExps(List.of(1.0), exps, Faithfulness.MSE);
        }

        /** A copy that visits the edges in this order (for parity with a recorded AutoCircuit run). */
        public Options withVisitOrder(List<String> order) {
            return new Options(taus, faithfulness, order, checkpointEdges, checkpointInterval);
        }

        /** A copy that checkpoints after {@code edges} decisions or {@code interval}, whichever comes first. */
        public Options withCheckpointEvery(int edges, Duration interval) {
            return new Options(taus, faithfulness, visitOrder, edges, interval);
        }
    }

    /**
     * Sees every forward pass a run makes (for tests and diagnostics; AutoCircuit's {@code test_mode}). It costs
     * a host copy of the output per trial, so production runs pass none.
     */
    @FunctionalInterface
    public interface TrialObserver {
        /**
         * @param tauIndex which τ pass
         * @param edge     the edge being tried (its mask is 1 now)
         * @param output   the patched output of the trial, {@code [batch, (seq,) vocab]} (in a data-parallel run, of this
     *                 rank's prompts of the batch)
         * @param masks    the current masks (1 = ablated), computed on demand
         */
        void trial(int tauIndex, Edge edge, HostTensor output, Supplier<PruneScores> masks);
    }

    /** ACDC scores; leaves the model's masks at the last pass's circuit (quirk 2 of docs/quirks.md). */
    public static PruneScores scores(PruneRun run, Options options) {
        return scores(run, options, null);
    }

    /**
     * ACDC scores, reporting every forward pass to {@code observer} (null for none).
     *
     * @throws IllegalArgumentException for a visit order that is not a layer-descending permutation of the edges,
     *                                  or a checkpoint written for another run (naming the field that differs)
     * @throws CancellationException    when the progress callback or a thread interrupt cancels the run; the
     *                                  checkpoint file (if any) then holds every finished decision
     */
    public static PruneScores scores(PruneRun run, Options options, TrialObserver observer) {
        return scores(run, options, observer, AcdcSearch.DEFAULT_WINDOW, true);
    }

    /**
     * With the speed-ups exposed, for tests and benchmarks that check they change nothing: {@code window} trials
     * per batched forward pass (1 = strictly one trial per pass, restarted at its destination's block: AutoCircuit's
     * algorithm), {@code skip} = decide provably unchanged trials without a pass.
     */
    public static PruneScores scores(PruneRun run, Options options, TrialObserver observer, int window, boolean skip) {
        return scores(run, options, observer, window, skip, true);
    }

    /**
     * As {@link #scores(PruneRun, Options, TrialObserver, int, boolean)}; {@code fusedKl} = with the native kernels,
     * compute the KL divergence from the final norm's output and a native log-sum-exp over the vocabulary instead of
     * from the logits (docs/native.md, "ACDC on the component graph"); false = the plain libtorch KL, for tests.
     */
    public static PruneScores scores(PruneRun run, Options options, TrialObserver observer, int window, boolean skip,
                                     boolean fusedKl) {
        if (run == null) throw new IllegalArgumentException("run must not be null");
        if (options == null) throw new IllegalArgumentException("options must not be null");
        int[] order = visitOrder(run.model().graph(), options.visitOrder());
        try (AcdcSearch search = new AcdcSearch(run, options, order, observer, window, skip, fusedKl)) {
            return search.run();
        }
    }

    /**
     * The library's visit order, as positions in {@link Graph#edges()}: destination layer descending (the output
     * first, as ACDC requires), and within a layer the graph's own edge order (destination modules in canonical
     * order, then each module's mask row-major: position, head, source). AutoCircuit's order within a layer follows
     * Python set iteration and is not reproducible; this one is.
     */
    public static int[] defaultVisitOrder(Graph graph) {
        List<Edge> edges = graph.edges();
        Integer[] idx = new Integer[edges.size()];
        for (int i = 0; i < idx.length; i++) idx[i] = i;
        int[] layer = new int[edges.size()];
        for (int i = 0; i < layer.length; i++) layer[i] = edges.get(i).dest().layer();
        Arrays.sort(idx, (a, b) -> Integer.compare(layer[b], layer[a]));   // stable: graph order within a layer
        int[] out = new int[idx.length];
        for (int i = 0; i < out.length; i++) out[i] = idx[i];
        return out;
    }

    /** Resolves an explicit order (or the default one) to edge positions, checking it is a valid ACDC order. */
    static int[] visitOrder(Graph graph, List<String> explicit) {
        if (explicit == null) return defaultVisitOrder(graph);
        Map<String, Integer> byKey = new HashMap<>();
        List<Edge> edges = graph.edges();
        for (int i = 0; i < edges.size(); i++) byKey.put(edges.get(i).toString(), i);
        if (explicit.size() != edges.size()) {
            throw new IllegalArgumentException("visitOrder must hold each of the graph's " + edges.size()
                + " edges once, got " + explicit.size() + " entries");
        }
        int[] out = new int[explicit.size()];
        boolean[] seen = new boolean[edges.size()];
        for (int p = 0; p < out.length; p++) {
            String key = explicit.get(p);
            Integer i = byKey.get(key);
            if (i == null) throw new IllegalArgumentException("visitOrder[" + p + "] = '" + key + "' is not an edge of " + graph);
            if (seen[i]) throw new IllegalArgumentException("visitOrder[" + p + "] = '" + key + "' appears twice");
            seen[i] = true;
            out[p] = i;
            if (p > 0 && edges.get(out[p - 1]).dest().layer() < edges.get(i).dest().layer()) {
                throw new IllegalArgumentException("visitOrder must be sorted by destination layer descending, but '"
                    + explicit.get(p - 1) + "' (layer " + edges.get(out[p - 1]).dest().layer() + ") precedes '" + key
                    + "' (layer " + edges.get(i).dest().layer() + ")");
            }
        }
        return out;
    }

    /** The spelling of {@link Options#visitOrder()} entries: {@code name} or {@code name@seqIdx}. */
    public static String edgeKey(String name, OptionalInt seqIdx) {
        return seqIdx.isPresent() ? name + "@" + seqIdx.getAsInt() : name;
    }

    /** The edges a score array marks as kept (+∞), by {@link Edge#toString()}, sorted. */
    public static List<String> keptEdges(PruneScores scores) {
        List<String> out = new ArrayList<>();
        float[] flat = scores.flat();
        List<Edge> edges = scores.graph().edges();
        for (int i = 0; i < flat.length; i++) if (flat[i] == Float.POSITIVE_INFINITY) out.add(edges.get(i).toString());
        Collections.sort(out);
        return out;
    }

    /** The block a destination module lives in, from its TransformerLens name ({@code blocks.N.…}). */
    static int blockOf(DestModule dm) {
        String name = dm.moduleName();
        if (!name.startsWith("blocks.")) return 0;
        int dot = name.indexOf('.', 7);
        return Integer.parseInt(name.substring(7, dot < 0 ? name.length() : dot));
    }
}
