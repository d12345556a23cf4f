package org.autocircuit.algorithms;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.autocircuit.algorithms.SubnetworkProbing.FaithfulnessTarget;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.MaskFn;

/**
 * Circuit probing: {@link SubnetworkProbing} run once per circuit size, smallest first, each time aiming
 * at that size ({@code circuitSize}). The {@code size} top-scoring edges of run i that no smaller circuit claimed get
 * the score {@code len(sizes) − i}; edges in no circuit stay 0. So the smallest circuit's edges score highest, and
 * the scores are levels rather than magnitudes.
 *
 * <p>Every size trains from fresh masks and a fresh Adam; its hard-concrete samples are seeded from
 * {@link PruneRun#seed()} with the size index as the stage ({@link SubnetworkProbing} explains the seeding). With a
 * checkpoint file the run resumes inside the size it was interrupted in, with the levels of the finished sizes.
 * Modifies the model's masks (they end as the largest size's).
 */
public final class CircuitProbing {
    private CircuitProbing() {}

    /** One entry of {@code circuit_sizes}: a number of edges, or the size of the task's official circuit. */
    public sealed interface CircuitSize permits CircuitSize.Edges, CircuitSize.TrueSize {
        /** A fixed number of edges (positive). */
        record Edges(int count) implements CircuitSize {
            public Edges {
                if (count <= 0) throw new IllegalArgumentException("circuit size must be positive, got " + count);
            }

            @Override
            public String toString() {
                return Integer.toString(count);
            }
        }

        /** {@code "true_size"}: as many edges as the official circuit has (the run needs official edges). */
        enum TrueSize implements CircuitSize {
            TRUE_SIZE;

            @Override
            public String toString() {
                return "true_size";
            }
        }

        CircuitSize TRUE_SIZE = TrueSize.TRUE_SIZE;

        static CircuitSize of(int count) {
            return new Edges(count);
        }

        /** {@code "true_size"} or a positive integer. */
        static CircuitSize parse(String s) {
            if (s.equals("true_size")) return TRUE_SIZE;
            try {
                return of(Integer.parseInt(s.trim()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("circuit size must be \"true_size\" or a positive integer, got '" + s + "'");
            }
        }
    }

    /**
     * The parameters of {@code circuit_probing_prune_scores}: those of {@link SubnetworkProbing.Options} without
     * {@code circuitSize}, plus the sizes. Defaults in {@link #defaults()}. Note the initial value: subnetwork probing
     * starts the masks at {@code +initVal} with tree optimisation and {@code −initVal} otherwise, and circuit probing's
     * default is {@code −ln 5}, so its masks start at −1.609 (tree) or +1.609 (not tree), as in AutoCircuit.
     */
    public record Options(double learningRate, int epochs, double regularizeLambda, MaskFn maskFn, double dropoutP,
                          double initVal, List<CircuitSize> circuitSizes, boolean treeOptimisation, Set<Edge> avoidEdges,
                          double avoidLambda, FaithfulnessTarget faithfulnessTarget, List<PromptPairBatch> validation) {
        public Options {
            if (circuitSizes == null || circuitSizes.isEmpty()) {
                throw new IllegalArgumentException("circuitSizes must hold at least one size");
            }
            circuitSizes = List.copyOf(circuitSizes);
            avoidEdges = avoidEdges == null ? Set.of() : Set.copyOf(avoidEdges);
            validation = validation == null ? List.of() : List.copyOf(validation);
            // The other parameters are checked where subnetwork probing checks them (the fields are not set yet, so
            // this passes the constructor's parameters rather than calling probing()).
            new SubnetworkProbing.Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, 1,
                treeOptimisation, avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        /** AutoCircuit's defaults: lr 0.1, 20 epochs, λ 10, hard concrete, init −ln 5, sizes ["true_size"], KL. */
        public static Options defaults() {
            return new Options(0.1, 20, 10, MaskFn.HARD_CONCRETE, 0.0, -MaskFn.INIT_MASK_VAL,
                List.of(CircuitSize.TRUE_SIZE), false, Set.of(), 1.0, FaithfulnessTarget.KL_DIV, List.of());
        }

        /** Registry row "Circuit Probing" (CP): lr 0.1, 2000 epochs, λ 0.1, sizes ["true_size", 1000]. */
        public static Options circuitProbing() {
            return defaults().withEpochs(2000).withRegularizeLambda(0.1)
                .withCircuitSizes(List.of(CircuitSize.TRUE_SIZE, CircuitSize.of(1000)));
        }

        /** Registry row "Tree Probing" (TP): lr 0.1, 200 epochs, λ 0.1, sizes [100, "true_size", 1000, 10000], tree. */
        public static Options treeProbing() {
            return defaults().withEpochs(200).withRegularizeLambda(0.1).withTreeOptimisation(true)
                .withCircuitSizes(List.of(CircuitSize.of(100), CircuitSize.TRUE_SIZE, CircuitSize.of(1000), CircuitSize.of(10000)));
        }

        /** Registry row "MSE Tree Probing" (TP (MSE)): lr 0.1, 200 epochs, λ 0.1, ["true_size"], tree, mse. */
        public static Options mseTreeProbing() {
            return defaults().withEpochs(200).withRegularizeLambda(0.1).withTreeOptimisation(true)
                .withFaithfulnessTarget(FaithfulnessTarget.MSE);
        }

        /**
         * Registry row "Opposite Tree Probing" (OTP): lr 0.1, 100 epochs, λ 0.1, ["true_size", 1000, 10000], tree,
         * wrong_answer.
         */
        public static Options oppositeTreeProbing() {
            return defaults().withEpochs(100).withRegularizeLambda(0.1).withTreeOptimisation(true)
                .withFaithfulnessTarget(FaithfulnessTarget.WRONG_ANSWER)
                .withCircuitSizes(List.of(CircuitSize.TRUE_SIZE, CircuitSize.of(1000), CircuitSize.of(10000)));
        }

        /** The subnetwork-probing parameters of the run that aims at {@code size} edges. */
        public SubnetworkProbing.Options probing(int size) {
            return new SubnetworkProbing.Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, size,
                treeOptimisation, avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withEpochs(int v) {
            return new Options(learningRate, v, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withLearningRate(double v) {
            return new Options(v, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withRegularizeLambda(double v) {
            return new Options(learningRate, epochs, v, maskFn, dropoutP, initVal, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withMaskFn(MaskFn v) {
            return new Options(learningRate, epochs, regularizeLambda, v, dropoutP, initVal, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withDropoutP(double v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, v, initVal, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withInitVal(double v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, v, circuitSizes, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withCircuitSizes(List<CircuitSize> v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, v, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withTreeOptimisation(boolean v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes, v,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withAvoidEdges(Set<Edge> edges, double lambda) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes,
                treeOptimisation, edges, lambda, faithfulnessTarget, validation);
        }

        public Options withFaithfulnessTarget(FaithfulnessTarget v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes,
                treeOptimisation, avoidEdges, avoidLambda, v, validation);
        }

        public Options withValidation(List<PromptPairBatch> v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSizes,
                treeOptimisation, avoidEdges, avoidLambda, faithfulnessTarget, v);
        }
    }

    /** The circuit-probing scores. Modifies the model's masks. */
    public static PruneScores scores(PruneRun run, Options options) {
        Graph graph = run.model().graph();
        List<Integer> sizes = resolveSizes(options.circuitSizes(), run.officialEdges(), graph.nEdges());
        List<Integer> ascending = new ArrayList<>(sizes);
        ascending.sort(null);
        String fingerprint = SubnetworkProbing.fingerprint("circuit probing", run,
            "sizes=" + ascending + " " + options.probing(1).canonical());
        SubnetworkProbingCheckpoint.Saved saved = run.checkpoint() == null ? null
            : SubnetworkProbingCheckpoint.loadIfPresent(run.checkpoint(), fingerprint, graph);

        float[] levels = new float[graph.nEdges()];
        int firstSize = 0;
        if (saved != null) {
            firstSize = saved.stage();
            if (saved.jobScores() != null) levels = saved.jobScores();
        }
        long stepsPerSize = (long) options.epochs() * run.train().size();
        for (int i = firstSize; i < ascending.size(); i++) {
            int size = ascending.get(i);
            SubnetworkProbing.Stage stage = new SubnetworkProbing.Stage(i,
                "circuit probing, size " + size + " (" + (i + 1) + "/" + ascending.size() + ")",
                stepsPerSize * i, stepsPerSize * ascending.size(), fingerprint, levels.clone());
            PruneScores sizeScores = SubnetworkProbing.train(run, options.probing(size), stage,
                saved != null && saved.stage() == i ? saved : null).scores();
            levels = addCircuit(levels, sizeScores, size, ascending.size() - i);
            if (run.checkpoint() != null) {
                SubnetworkProbingCheckpoint.save(run.checkpoint(), fingerprint, i + 1, 0, null, null,
                    new SubnetworkProbing.History(), levels);
            }
        }
        return PruneScores.ofFlat(graph, levels);
    }

    /**
     * Turns {@code circuit_sizes} into edge counts: "true_size" is the number of official edges.
     *
     * @throws IllegalArgumentException if "true_size" is asked for without official edges, or a size is not positive,
     *                                  repeats, or exceeds the number of edges
     */
    public static List<Integer> resolveSizes(List<CircuitSize> sizes, Set<Edge> officialEdges, int nEdges) {
        List<Integer> out = new ArrayList<>(sizes.size());
        Set<Integer> seen = new HashSet<>();
        for (CircuitSize s : sizes) {
            int n;
            if (s instanceof CircuitSize.Edges e) {
                n = e.count();
            } else {
                if (officialEdges == null) {
                    throw new IllegalArgumentException("circuit size \"true_size\" needs the task's official edges, but"
                        + " none were given (give the PruneRun official edges, or list explicit sizes)");
                }
                n = officialEdges.size();
                if (n <= 0) {
                    throw new IllegalArgumentException("circuit size \"true_size\" must be positive, but the official"
                        + " circuit has no edges");
                }
            }
            if (n > nEdges) {
                throw new IllegalArgumentException("circuit size " + s + (s instanceof CircuitSize.TrueSize ? " = " + n : "")
                    + " exceeds the model's " + nEdges + " edges");
            }
            if (!seen.add(n)) {
                throw new IllegalArgumentException("circuit sizes must be distinct, but " + n + " appears twice in " + sizes
                    + (officialEdges != null ? " (true_size = " + officialEdges.size() + ")" : ""));
            }
            out.add(n);
        }
        return out;
    }

    /**
     * One step of circuit probing: the edges of {@code newScores} at or above its top-{@code size} threshold that have no
     * level yet get {@code level}; the others keep theirs.
     *
     * @param current   levels so far, one per edge in graph edge order (not modified)
     * @param newScores one probing run's scores (all ≥ 0)
     * @return the new levels
     */
    static float[] addCircuit(float[] current, PruneScores newScores, int size, int level) {
        float threshold = newScores.threshold(size);
        float[] s = newScores.flat();
        float[] out = current.clone();
        for (int i = 0; i < out.length; i++) {
            if (s[i] >= threshold && current[i] == 0f) out[i] = level;
        }
        return out;
    }
}
