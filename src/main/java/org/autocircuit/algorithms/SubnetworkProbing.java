package org.autocircuit.algorithms;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.distributed.Collective;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.MaskFn;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Adam;
import org.bytedeco.pytorch.AdamOptions;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Subnetwork probing: learn one mask logit per edge with Adam, trading faithfulness to the full model
 * against the number of edges, after Cao, Sanh and Rush, "Low-Complexity Probing via Finding Subnetworks" (2021), with
 * AutoCircuit's edge-level formulation (the "Edge Pruning" of Bhaskar et al. 2024 is the same idea).
 *
 * <p>Mask 0 keeps an edge, 1 ablates it; ablated edges take the dataset mean of the corrupt prompts
 * ({@link AblationType#TOKENWISE_MEAN_CORRUPT}, hard-coded as in AutoCircuit: quirks.md). Each optimiser step runs one
 * batch with the masks passed through the mask function (by default a fresh hard-concrete sample per prompt), and
 * minimises {@code faithfulness + λ · regulariser}:
 * <ul>
 *   <li>tree optimisation: the input is clean, the regulariser counts the <em>kept</em> edges ({@code nEdges − Σ mask}),
 *       so training ablates as much as faithfulness allows; the circuit is the low masks;</li>
 *   <li>otherwise: the input is corrupt, the regulariser counts the <em>patched</em> edges ({@code Σ mask}); the circuit
 *       is the high masks.</li>
 * </ul>
 * With {@code circuitSize} the count is {@code relu(count − circuitSize) / circuitSize}, a target rather than a
 * minimum. The scores are {@code xtreme + sign · mask}, so every score is ≥ 0 and the circuit's edges
 * score highest: tree: {@code |max mask| − mask}; otherwise {@code |min mask| + mask}.
 *
 * <h2>Randomness</h2>
 * Hard-concrete samples and mask dropout draw from libtorch's global generator. Before every optimiser step it is
 * re-seeded with {@code torch.manual_seed(stepSeed(run.seed(), stage, epoch, batch))} (a SplitMix64 mix of the four), so
 * a run is reproducible from {@link PruneRun#seed()} alone, and a run resumed from a checkpoint draws exactly the samples
 * the uninterrupted run would have. The global generator is shared by the process: runs in other threads that draw
 * random numbers at the same time break that reproducibility.
 *
 * <h2>Checkpoints</h2>
 * With {@link PruneRun#checkpoint()} set, every finished epoch writes the masks, Adam's state (moments and step) and the
 * loss history to that file (a temporary file renamed over it), and a later run with the same model, batches, seed and
 * options resumes after the last finished epoch and ends with bit-identical scores. A finished run's file is kept, so
 * running again returns at once. Resume on the device the checkpoint was written on.
 *
 * <p>Interruption ({@link java.util.concurrent.CancellationException} from {@link PruneRun#progress()} or a thread
 * interrupt) ends the run; the model keeps the masks learned so far. Modifies the model's state (the masks).
 *
 * <h2>Data-parallel</h2>
 * With {@link PruneRun#collective()} of several ranks, every optimiser step is split DDP-style: each rank runs its
 * contiguous part of the step's batch ({@link Collective#rowRange}) and computes the faithfulness term over its prompts,
 * weighted by its share of the batch (every target is a mean over prompts); rank 0 alone adds the regulariser; then
 * one all-reduce sums the mask gradients (and the loss terms) and every rank takes the same Adam step. The hard-concrete
 * samples are drawn for the whole batch on every rank ({@link PatchableModel#sampleRowsOf}) and each rank uses its
 * prompts' rows, so with the same seed the run follows one process's up to the order of float additions. The clean
 * outputs are computed per part; the dataset-mean ablation and the validation curve (rank 0 only) are not split.
 */
public final class SubnetworkProbing {
    private SubnetworkProbing() {}

    /** What the faithfulness term of the loss measures ({@code SP_FAITHFULNESS_TARGET}). */
    public enum FaithfulnessTarget {
        /** KL(clean ‖ circuit) of the output distributions, the mean over rows. */
        KL_DIV("kl_div"),
        /** Mean squared error of the circuit's outputs against float answers (tracr x-proportion). */
        MSE("mse"),
        /** −(mean answer logit). */
        ANSWER("answer"),
        /** −(mean wrong-answer logit): the "opposite" circuit. */
        WRONG_ANSWER("wrong_answer"),
        /** The fraction of prompts whose top token is the answer; not differentiable, so only the regulariser trains. */
        CORRECT_PERCENT("correct_percent"),
        /** mean |100 − logit-difference percent of the clean model| over prompts. */
        LOGIT_DIFF_PERCENT("logit_diff_percent");

        private final String key;

        FaithfulnessTarget(String key) {
            this.key = key;
        }

        /** AutoCircuit's spelling ("kl_div", ...). */
        public String key() {
            return key;
        }

        /** Parses AutoCircuit's spelling or the constant name. */
        public static FaithfulnessTarget parse(String s) {
            for (FaithfulnessTarget t : values()) {
                if (t.key.equals(s) || t.name().equals(s)) return t;
            }
            List<String> keys = new ArrayList<>();
            for (FaithfulnessTarget t : values()) keys.add(t.key);
            throw new IllegalArgumentException("unknown faithfulness target '" + s + "'; valid: " + keys);
        }

        /**
         * @param logits      [batch, vocab] the circuit's outputs
         * @param cleanLogits [batch, vocab] the unpatched model's outputs on the clean prompts
         * @return a 0-d loss term
         */
        Tensor term(Tensor logits, Tensor cleanLogits, PromptPairBatch batch) {
            return switch (this) {
                case KL_DIV -> TensorOps.multibatchKlDiv(logits.log_softmax(-1), cleanLogits.log_softmax(-1));
                case MSE -> {
                    if (!(batch.answers() instanceof Answers.Stacked s)) {
                        throw new IllegalArgumentException("faithfulness target mse needs one answer shape for every prompt"
                            + " (stacked answers), but batch " + batch.key() + " has ragged answers");
                    }
                    Tensor target = s.values().toTensor().to(logits.device(), torch.ScalarType.Float);
                    if (target.numel() == logits.numel()) target = target.reshape(logits.shape());
                    // Otherwise broadcast, as torch's mse_loss does (e.g. [batch, vocab] against [batch, 1]).
                    yield logits.sub(target).pow(new Scalar(2)).mean();
                }
                case ANSWER -> TensorOps.batchAvgAnswerVal(logits, batch, false).neg();
                case WRONG_ANSWER -> TensorOps.batchAvgAnswerVal(logits, batch, true).neg();
                case CORRECT_PERCENT -> torch.scalar_tensor(new Scalar(TensorOps.correctAnswerProportion(logits, batch)))
                    .to(logits.device(), torch.ScalarType.Float);
                case LOGIT_DIFF_PERCENT -> TensorOps.batchAnswerDiffPercents(logits, cleanLogits, batch)
                    .sub(new Scalar(100.0)).abs().mean();
            };
        }
    }

    /**
     * The parameters of {@code subnetwork_probing_prune_scores}, with its defaults in {@link #defaults()}.
     *
     * @param learningRate        Adam's learning rate
     * @param epochs              passes over the training batches (one optimiser step per batch)
     * @param regularizeLambda    weight λ of the edge-count regulariser
     * @param maskFn              how mask logits become masks ({@link MaskFn#HARD_CONCRETE} is what works)
     * @param dropoutP            mask dropout while training
     * @param initVal             the masks start at {@code +initVal} with tree optimisation, {@code −initVal} otherwise
     * @param circuitSize         the number of edges to aim for, or null to minimise the count
     * @param treeOptimisation    run on clean and learn what to ablate (true), or on corrupt and learn what to patch
     * @param avoidEdges          edges penalised for being in the circuit; empty for none
     * @param avoidLambda         weight of that penalty, shared by the avoided edges
     * @param faithfulnessTarget  the faithfulness term
     * @param validation          batches on which logprob-difference percents are recorded after every step (only a
     *                            curve in {@link Result}; empty for none)
     */
    public record Options(double learningRate, int epochs, double regularizeLambda, MaskFn maskFn, double dropoutP,
                          double initVal, Integer circuitSize, boolean treeOptimisation, Set<Edge> avoidEdges,
                          double avoidLambda, FaithfulnessTarget faithfulnessTarget, List<PromptPairBatch> validation) {
        public Options {
            if (!(learningRate > 0) || Double.isInfinite(learningRate)) {
                throw new IllegalArgumentException("learningRate must be a positive number, got " + learningRate);
            }
            if (epochs < 0) throw new IllegalArgumentException("epochs must be ≥ 0, got " + epochs);
            requireFinite("regularizeLambda", regularizeLambda);
            if (maskFn == null) throw new IllegalArgumentException("maskFn must not be null (use MaskFn.NONE)");
            if (!(dropoutP >= 0 && dropoutP < 1)) throw new IllegalArgumentException("dropoutP must be in [0, 1), got " + dropoutP);
            requireFinite("initVal", initVal);
            if (circuitSize != null && circuitSize <= 0) {
                throw new IllegalArgumentException("circuitSize must be positive (or null for none), got " + circuitSize);
            }
            avoidEdges = avoidEdges == null ? Set.of() : Set.copyOf(avoidEdges);
            requireFinite("avoidLambda", avoidLambda);
            if (faithfulnessTarget == null) throw new IllegalArgumentException("faithfulnessTarget must not be null");
            validation = validation == null ? List.of() : List.copyOf(validation);
        }

        /** AutoCircuit's defaults: lr 0.1, 20 epochs, λ 10, hard concrete, no dropout, init ln 5, KL divergence. */
        public static Options defaults() {
            return new Options(0.1, 20, 10, MaskFn.HARD_CONCRETE, 0.0, MaskFn.INIT_MASK_VAL, null, false, Set.of(),
                1.0, FaithfulnessTarget.KL_DIV, List.of());
        }

        /** Registry row "Subnetwork Edge Probing" (SEP): lr 0.1, 200 epochs, λ 0.5, hard concrete. */
        public static Options subnetworkEdgeProbing() {
            return defaults().withEpochs(200).withRegularizeLambda(0.5);
        }

        /** Registry row "Subnetwork Tree Probing" (STP): lr 0.1, 2000 epochs, λ 0.5, hard concrete, tree. */
        public static Options subnetworkTreeProbing() {
            return defaults().withEpochs(2000).withRegularizeLambda(0.5).withTreeOptimisation(true);
        }

        /** Registry row "MSE Subnetwork Tree Probing" (STP (MSE)): lr 0.1, 200 epochs, λ 0.5, tree, mse. */
        public static Options mseSubnetworkTreeProbing() {
            return defaults().withEpochs(200).withRegularizeLambda(0.5).withTreeOptimisation(true)
                .withFaithfulnessTarget(FaithfulnessTarget.MSE);
        }

        public Options withLearningRate(double v) {
            return new Options(v, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withEpochs(int v) {
            return new Options(learningRate, v, regularizeLambda, maskFn, dropoutP, initVal, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withRegularizeLambda(double v) {
            return new Options(learningRate, epochs, v, maskFn, dropoutP, initVal, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withMaskFn(MaskFn v) {
            return new Options(learningRate, epochs, regularizeLambda, v, dropoutP, initVal, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withDropoutP(double v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, v, initVal, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withInitVal(double v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, v, circuitSize, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withCircuitSize(Integer v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, v, treeOptimisation,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withTreeOptimisation(boolean v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSize, v,
                avoidEdges, avoidLambda, faithfulnessTarget, validation);
        }

        public Options withAvoidEdges(Set<Edge> edges, double lambda) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSize,
                treeOptimisation, edges, lambda, faithfulnessTarget, validation);
        }

        public Options withFaithfulnessTarget(FaithfulnessTarget v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSize,
                treeOptimisation, avoidEdges, avoidLambda, v, validation);
        }

        public Options withValidation(List<PromptPairBatch> v) {
            return new Options(learningRate, epochs, regularizeLambda, maskFn, dropoutP, initVal, circuitSize,
                treeOptimisation, avoidEdges, avoidLambda, faithfulnessTarget, v);
        }

        /** A stable text form (enum names, exact doubles, avoided edges hashed), for checkpoint fingerprints. */
        String canonical() {
            List<String> avoid = new ArrayList<>();
            for (Edge e : avoidEdges) avoid.add(e.toString());
            Collections.sort(avoid);
            List<Long> valKeys = new ArrayList<>();
            for (PromptPairBatch b : validation) valKeys.add(b.key());
            return "lr=" + learningRate + " epochs=" + epochs + " lambda=" + regularizeLambda + " maskFn=" + maskFn
                + " dropout=" + dropoutP + " init=" + initVal + " circuitSize=" + circuitSize + " tree=" + treeOptimisation
                + " avoid=" + avoid.size() + ":" + sha256(String.join(",", avoid)) + " avoidLambda=" + avoidLambda
                + " target=" + faithfulnessTarget.key() + " validation=" + valKeys;
        }
    }

    /**
     * The scores and the training curves, one entry per optimiser step.
     *
     * @param regularization     λ · regulariser (avoid-edge penalty included)
     * @param validationMean     mean logprob-difference percent on the validation batch of each step (empty without)
     * @param validationStd      its standard deviation over prompts (unbiased)
     */
    public record Result(PruneScores scores, List<Double> losses, List<Double> faithfulness, List<Double> regularization,
                         List<Double> validationMean, List<Double> validationStd) {
        public Result {
            losses = List.copyOf(losses);
            faithfulness = List.copyOf(faithfulness);
            regularization = List.copyOf(regularization);
            validationMean = List.copyOf(validationMean);
            validationStd = List.copyOf(validationStd);
        }
    }

    /** The edge scores of one probing run. Modifies the model's masks. */
    public static PruneScores scores(PruneRun run, Options options) {
        return train(run, options).scores();
    }

    /** Trains the masks and returns the scores with the loss curves. Modifies the model's masks. */
    public static Result train(PruneRun run, Options options) {
        String fingerprint = fingerprint("subnetwork probing", run, options.canonical());
        SubnetworkProbingCheckpoint.Saved saved = run.checkpoint() == null ? null
            : SubnetworkProbingCheckpoint.loadIfPresent(run.checkpoint(), fingerprint, run.model().graph());
        long steps = (long) options.epochs() * run.train().size();
        Stage stage = new Stage(0, "subnetwork probing", 0, steps, fingerprint, null);
        return train(run, options, stage, saved);
    }

    /**
     * Where one training run sits inside a larger job (circuit probing trains once per circuit size).
     *
     * @param index       the stage number, mixed into the step seeds and stored in checkpoints
     * @param stepsBefore optimiser steps of earlier stages (for progress)
     * @param stepsTotal  optimiser steps of the whole job
     * @param fingerprint the job's description; a checkpoint with another one is refused
     * @param jobScores   scores the job has finished so far, saved with every checkpoint (null for none)
     */
    record Stage(int index, String task, long stepsBefore, long stepsTotal, String fingerprint, float[] jobScores) {}

    static Result train(PruneRun run, Options o, Stage stage, SubnetworkProbingCheckpoint.Saved saved) {
        PatchableModel model = run.model();
        if (model.inPatchMode()) {
            throw new IllegalStateException("subnetwork probing needs the model outside patch mode: it computes the clean"
                + " outputs unpatched and opens patch mode itself");
        }
        Graph graph = model.graph();
        List<PromptPairBatch> batches = run.train();
        int nEdges = graph.nEdges();
        long[] avoidIdx = new long[o.avoidEdges().size()];
        int a = 0;
        for (Edge e : o.avoidEdges()) avoidIdx[a++] = graph.edgeIndex(e);
        History history = new History();
        int startEpoch = 0;

        try (PointerScope runScope = new PointerScope()) {
            Collective dist = run.collective();
            Map<Long, Tensor> cleanLogits = dist.isDistributed() ? cleanPartOutputs(model, batches, dist)
                : cleanOutputs(model, batches, false);
            Tensor patch = Ablations.datasetMean(model, batches, AblationType.TOKENWISE_MEAN_CORRUPT);
            Map<Long, Tensor> valCleanLogprobs = o.validation().isEmpty() ? Map.of() : cleanOutputs(model, o.validation(), true);
            Tensor valPatch = o.validation().isEmpty() ? null
                : Ablations.datasetMean(model, o.validation(), AblationType.TOKENWISE_MEAN_CORRUPT);
            Tensor avoid = avoidIdx.length == 0 ? null : HostTensor.ofLongs(avoidIdx, avoidIdx.length).toTensor();

            model.setAllMasks(o.treeOptimisation() ? o.initVal() : -o.initVal());
            if (saved != null && saved.stage() == stage.index() && saved.masks() != null) {
                model.setMasks(PruneScores.ofFlat(graph, saved.masks()));
                history = saved.history();
                startEpoch = saved.epochsDone();
            }
            List<Tensor> masks = new ArrayList<>(model.masks().values());
            try (PatchableModel.MaskTraining training = model.trainMaskMode();
                 PatchableModel.MaskFnMode fn = model.maskFnMode(o.maskFn(), o.dropoutP())) {
                Adam adam = new Adam(new TensorVector(masks.toArray(new Tensor[0])), new AdamOptions(o.learningRate()));
                if (startEpoch > 0) saved.restoreOptimizer(adam);
                long done = stage.stepsBefore() + (long) startEpoch * batches.size();
                for (int epoch = startEpoch; epoch < o.epochs(); epoch++) {
                    for (int b = 0; b < batches.size(); b++) {
                        Progress.checkInterrupted(stage.task());
                        PromptPairBatch batch = batches.get(b);
                        try (PointerScope step = new PointerScope()) {
                            torch.manual_seed(stepSeed(run.seed(), stage.index(), epoch, b));
                            if (dist.isDistributed()) {
                                splitStep(model, o, batch, patch, cleanLogits.get(batch.key()), masks, nEdges, avoid,
                                    adam, history, dist);
                            } else {
                                step(model, o, batch, patch, cleanLogits.get(batch.key()), masks, nEdges, avoid, adam,
                                    history);
                            }
                            if (valPatch != null && dist.isLeader()) {
                                PromptPairBatch vb = o.validation().get(b < o.validation().size() ? b : 0);
                                validate(model, o, vb, valPatch, valCleanLogprobs.get(vb.key()), history);
                            }
                        }
                        run.progress().update(stage.task(), ++done, stage.stepsTotal());
                    }
                    if (run.checkpoint() != null) {
                        SubnetworkProbingCheckpoint.save(run.checkpoint(), stage.fingerprint(), stage.index(), epoch + 1,
                            model.currentMasks().flat(), adam, history, stage.jobScores());
                    }
                }
                float[] m = model.currentMasks().flat();
                return new Result(PruneScores.ofFlat(graph, scoresFromMasks(m, o.treeOptimisation())),
                    history.losses, history.faithfulness, history.regularization, history.validationMean,
                    history.validationStd);
            }
        }
    }

    /** One optimiser step on one batch. */
    private static void step(PatchableModel model, Options o, PromptPairBatch batch, Tensor patch, Tensor cleanLogits,
                             List<Tensor> masks, int nEdges, Tensor avoid, Adam adam, History history) {
        Ablations.CleanCorrupt side = o.treeOptimisation() ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
            Tensor logits = model.forward(Inputs.input(batch, side), Inputs.padding(batch, side));   // [batch, vocab]
            Tensor faithful = o.faithfulnessTarget().term(logits, cleanLogits, batch);

            Tensor weightedReg = weightedRegularizer(o, masks, nEdges, avoid);
            Tensor loss = faithful.add(weightedReg);
            adam.zero_grad();
            loss.backward();
            adam.step();
            history.losses.add(loss.item_double());
            history.faithfulness.add(faithful.item_double());
            history.regularization.add(weightedReg.item_double());
        }
    }

    /**
     * One optimiser step as one rank of a data-parallel run: the faithfulness term of this rank's prompts of the
     * batch (weighted by their share), the regulariser on rank 0 only, then the mask gradients and both terms summed
     * over ranks before the (identical) Adam step. A rank without prompts in this batch contributes zeros.
     */
    private static void splitStep(PatchableModel model, Options o, PromptPairBatch batch, Tensor patch, Tensor cleanPart,
                                  List<Tensor> masks, int nEdges, Tensor avoid, Adam adam, History history,
                                  Collective dist) {
        Ablations.CleanCorrupt side = o.treeOptimisation() ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        int[] part = dist.rowRange(batch.batchSize());
        double faithValue = 0, regValue = 0;
        adam.zero_grad();
        // the dataset mean repeated over the batch's rows: this rank's rows of it
        Tensor partPatch = part[1] > 0 && patch.size(1) == batch.batchSize() ? patch.narrow(1, part[0], part[1]) : patch;
        try (PatchableModel.PatchMode mode = model.patchMode(partPatch)) {
            List<Tensor> flat = new ArrayList<>(masks.size());
            for (Tensor m : masks) flat.add(m.flatten());
            // 0 · Σ masks: every mask gets a gradient (0 where this rank has none), adding only exact zeros
            Tensor loss = torch.cat(new TensorVector(flat.toArray(new Tensor[0]))).sum().mul(new Scalar(0.0));
            if (part[1] > 0) {
                PromptPairBatch mine = batch.rows(part[0], part[1]);
                try (PatchableModel.KvCachePart kv = model.kvCachePart(batch.batchSize(), part[0], part[1]);
                     PatchableModel.SampleRows rows = model.sampleRowsOf(batch.batchSize(), part[0])) {
                    Tensor logits = model.forward(Inputs.input(mine, side), Inputs.padding(mine, side));
                    Tensor faithful = o.faithfulnessTarget().term(logits, cleanPart, mine)
                        .mul(new Scalar((double) part[1] / batch.batchSize()));
                    faithValue = faithful.item_double();
                    loss = loss.add(faithful);
                }
            }
            if (dist.isLeader()) {
                // after the forward pass, as in one process: the same generator state, the same sample
                Tensor weightedReg = weightedRegularizer(o, masks, nEdges, avoid);
                regValue = weightedReg.item_double();
                loss = loss.add(weightedReg);
            }
            if (loss.requires_grad()) loss.backward();
        }
        double[] terms = allReduceGradients(dist, masks, faithValue, regValue);
        adam.step();
        history.losses.add(terms[0] + terms[1]);
        history.faithfulness.add(terms[0]);
        history.regularization.add(terms[1]);
    }

    /**
     * Sums every mask's gradient and the two loss terms over ranks (one all-reduce, in double), and writes the sums
     * back as the gradients.
     *
     * @return the summed faithfulness and regulariser terms
     */
    private static double[] allReduceGradients(Collective dist, List<Tensor> masks, double faith, double reg) {
        try (PointerScope s = new PointerScope()) {
            List<Tensor> parts = new ArrayList<>(masks.size() + 1);
            for (Tensor m : masks) {
                Tensor g = m.grad();
                // on the host (Gloo's tensors; the masks may live on a GPU)
                parts.add((g.defined() ? g : torch.zeros_like(m)).flatten().cpu().toType(torch.ScalarType.Double));
            }
            parts.add(AbstractTensor.create(new double[] {faith, reg}, 2));
            Tensor all = torch.cat(new TensorVector(parts.toArray(new Tensor[0]))).contiguous();
            dist.allReduceSumInPlace(all);
            long at = 0;
            for (Tensor m : masks) {
                Tensor g = m.grad();
                Tensor sum = all.narrow(0, at, m.numel()).view(m.shape());
                if (g.defined()) {
                    g.copy_(sum);
                } else {
                    throw new IllegalStateException("mask without a gradient after the backward pass");
                }
                at += m.numel();
            }
            double[] terms = new double[2];
            all.narrow(0, at, 2).contiguous().data_ptr_double().get(terms);
            return terms;
        }
    }

    /** λ · (edge-count regulariser + avoided-edge penalty), drawing one hard-concrete sample of every mask. */
    private static Tensor weightedRegularizer(Options o, List<Tensor> masks, int nEdges, Tensor avoid) {
        List<Tensor> flat = new ArrayList<>(masks.size());
        for (Tensor m : masks) flat.add(m.flatten());
        Tensor all = torch.cat(new TensorVector(flat.toArray(new Tensor[0])));                  // [nEdges], edge order
        // One sample of the whole mask vector, as AutoCircuit draws with batch_size=1.
        Tensor applied = switch (o.maskFn()) {
            case HARD_CONCRETE -> MaskFn.sampleHardConcrete(all, 1, false);                     // [1, nEdges]
            case SIGMOID -> all.sigmoid();
            case NONE -> all;
        };
        Tensor count = o.treeOptimisation() ? applied.sum().neg().add(new Scalar((double) nEdges)) : applied.sum();
        if (o.circuitSize() != null) count = count.sub(new Scalar((double) o.circuitSize())).relu();
        Tensor regularize = count.div(new Scalar((double) (o.circuitSize() != null ? o.circuitSize() : nEdges)));
        if (avoid != null) {
            Tensor penalty = all.index_select(0, avoid.to(all.device(), torch.ScalarType.Long));                     // [nAvoid]
            if (o.maskFn() != MaskFn.NONE) {
                double shift = o.maskFn() == MaskFn.HARD_CONCRETE ? MaskFn.REGULARIZE_CONST : 0.0;
                penalty = penalty.sub(new Scalar(shift)).sigmoid();
            }
            double weight = (o.treeOptimisation() ? -1 : 1) * o.avoidLambda() / o.avoidEdges().size();
            regularize = regularize.add(penalty.sum().mul(new Scalar(weight)));
        }
        return regularize.mul(new Scalar(o.regularizeLambda()));
    }

    /** The logprob-difference percents of one validation batch, without gradients (AutoCircuit's plot curve). */
    private static void validate(PatchableModel model, Options o, PromptPairBatch vb, Tensor valPatch,
                                 Tensor cleanLogprobs, History history) {
        Ablations.CleanCorrupt side = o.treeOptimisation() ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        try (NoGradGuard g = new NoGradGuard(); PatchableModel.PatchMode mode = model.patchMode(valPatch)) {
            Tensor logprobs = model.forward(Inputs.input(vb, side), Inputs.padding(vb, side)).log_softmax(-1);
            Tensor percents = TensorOps.batchAnswerDiffPercents(logprobs, cleanLogprobs, vb);
            history.validationMean.add(percents.mean().item_double());
            history.validationStd.add(percents.numel() > 1 ? percents.std().item_double() : Double.NaN);
        }
    }

    /** The unpatched outputs on the clean prompts (log-softmaxed if asked), by batch key, kept in the caller's scope. */
    private static Map<Long, Tensor> cleanOutputs(PatchableModel model, List<PromptPairBatch> batches, boolean logSoftmax) {
        Map<Long, Tensor> out = new LinkedHashMap<>();
        try (NoGradGuard g = new NoGradGuard()) {
            for (PromptPairBatch b : batches) {
                Tensor logits = model.forward(Inputs.clean(b), Inputs.padding(b, Ablations.CleanCorrupt.CLEAN));
                out.put(b.key(), logSoftmax ? logits.log_softmax(-1) : logits);
            }
        }
        return out;
    }

    /** The unpatched outputs of this rank's part of each batch on the clean prompts (none where it has no prompts). */
    private static Map<Long, Tensor> cleanPartOutputs(PatchableModel model, List<PromptPairBatch> batches,
                                                      Collective dist) {
        Map<Long, Tensor> out = new LinkedHashMap<>();
        try (NoGradGuard g = new NoGradGuard()) {
            for (PromptPairBatch b : batches) {
                int[] part = dist.rowRange(b.batchSize());
                if (part[1] == 0) continue;
                PromptPairBatch mine = b.rows(part[0], part[1]);
                try (PatchableModel.KvCachePart kv = model.kvCachePart(b.batchSize(), part[0], part[1])) {
                    out.put(b.key(), model.forward(Inputs.clean(mine), Inputs.padding(mine, Ablations.CleanCorrupt.CLEAN)));
                }
            }
        }
        return out;
    }

    /**
     * The final scores: {@code xtreme + sign · mask} with xtreme = |max mask| and sign −1 for tree optimisation, else
     * |min mask| and +1. Float arithmetic, as AutoCircuit adds a Python float to a float32 tensor.
     */
    static float[] scoresFromMasks(float[] masks, boolean tree) {
        float xtreme = masks.length == 0 ? 0f : masks[0];
        for (float m : masks) xtreme = tree ? Math.max(xtreme, m) : Math.min(xtreme, m);
        xtreme = Math.abs(xtreme);
        float[] scores = new float[masks.length];
        for (int i = 0; i < masks.length; i++) scores[i] = tree ? xtreme - masks[i] : xtreme + masks[i];
        return scores;
    }

    /** The seed of one optimiser step: SplitMix64 finalisers chained over the run seed, stage, epoch and batch. */
    static long stepSeed(long seed, int stage, int epoch, int batch) {
        long h = mix(seed);
        h = mix(h ^ stage);
        h = mix(h ^ epoch);
        return mix(h ^ batch);
    }

    private static long mix(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** What a checkpoint must match: the algorithm, seed, graph, training batches and options. */
    static String fingerprint(String algorithm, PruneRun run, String canonicalOptions) {
        Graph g = run.model().graph();
        List<Long> keys = new ArrayList<>();
        for (PromptPairBatch b : run.train()) keys.add(b.key());
        return algorithm + " seed=" + run.seed() + " graph=" + g.nEdges() + " edges/" + g.nSrcs() + " srcs"
            + (g.seqLen().isPresent() ? "/seq " + g.seqLen().getAsInt() : "") + (g.factorized() ? "" : "/unfactorized")
            + " batches=" + keys + " " + canonicalOptions
            + (run.identity() == null ? "" : "\n" + run.identity().lines());
    }

    static String sha256(String s) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    private static void requireFinite(String name, double v) {
        if (!Double.isFinite(v)) throw new IllegalArgumentException(name + " must be finite, got " + v);
    }

    /** The per-step curves, mutable while training. */
    static final class History {
        final List<Double> losses = new ArrayList<>();
        final List<Double> faithfulness = new ArrayList<>();
        final List<Double> regularization = new ArrayList<>();
        final List<Double> validationMean = new ArrayList<>();
        final List<Double> validationStd = new ArrayList<>();

        List<List<Double>> all() {
            return List.of(losses, faithfulness, regularization, validationMean, validationStd);
        }

        static String[] names() {
            return new String[] {"losses", "faithfulness", "regularization", "validation_mean", "validation_std"};
        }
    }
}
