package org.autocircuit.algorithms;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.distributed.Collective;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.NativeKernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.NormScales;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One ACDC run ({@link Acdc#scores}): the fixed tensors of the first batch, the search state, and the
 * checkpointing around it. Owns every tensor it creates (one {@link PointerScope}, closed with it).
 *
 * <p>Two facts make most of the speed (docs/algorithms/acdc.md):
 * <ol>
 *   <li>Destinations are visited by layer, last first, so when an edge into a destination in block L is tried,
 *       every destination before it still has mask 0: every activation before block L is the clean run's. A trial
 *       restarts the forward pass at block L from the clean run's cached residual stream, with the current-output
 *       buffer pre-filled with the clean source outputs (later blocks overwrite their own rows before they are read).
 *   <li>For the same reason each source feeding the destination still has its clean output, so ablating edge u→v
 *       changes v's input by exactly {@code patch_u − clean_u} at that edge's position. Where that difference is
 *       exactly zero (positions before clean and corrupt diverge), or the changed position cannot reach the sliced
 *       output (non-K/V inputs of the last block, and the final residual, off the last position when only the last
 *       position is returned), the patched output is bitwise the accepted state's, the change in faithfulness is 0
 *       and is below every τ &gt; 0: the edge is removed without a forward pass.
 *   <li>Most tried edges are removed, so the next trials run as one forward pass over {@code window × batch} rows
 *       with per-row masks, each assuming the earlier ones were removed; the trials after the first kept edge are
 *       discarded and tried again. That amortises the op dispatch of the blocks over many trials. Kept edges come
 *       in clusters (the first and last edges of a layer), so the window restarts at {@link #FIRST_WINDOW} trials
 *       after a kept edge and doubles after every window that kept nothing, up to {@link #DEFAULT_WINDOW}: on the
 *       component graph 118 batched trials for 110 decisions instead of 178 with fixed windows of 16 (replaying the
 *       run's decisions). The window
 *       changes which trials are computed together, never a decision.
 *   <li>With the native kernels the KL divergence is computed from the final norm's output, without the logits
 *       ({@link AcdcKl}), for every trial of a window in one kernel call (a discarded trial costs its rows of it).
 *   <li>Only the output is read, so with {@code LAST_SEQ} on a component graph the last block of a trial pass
 *       computes only what the last position needs ({@link PatchableModel#outputsOnly()}).
 * </ol>
 *
 * <p>Data-parallel ({@link PruneRun#collective()} of several ranks): each rank holds a contiguous part of the batch's
 * prompts ({@link Collective#rowRange}); a trial's faithfulness is a mean over prompts, so each rank sums it over its
 * prompts and the ranks exchange the sums (one all-reduce per forward pass, covering every trial of a window), and
 * every rank adds them in rank order and divides by the whole batch: bit-identical on every rank, so all take the
 * same decisions in the same order and keep identical search states (and checkpoints). The no-effect test is made
 * global by summing the per-rank maxima of |patch − clean|. A model's prefix KV cache is cut to the rank's prompts
 * for the run. A batch with fewer prompts than ranks runs replicated instead: every rank the whole batch, no
 * communication.
 */
final class AcdcSearch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AcdcSearch.class);

    /** The most trials per batched forward pass (see {@link #batchedTrials}). */
    static final int DEFAULT_WINDOW = 16;
    /** The window after a kept edge and at the start of a pass; it doubles after every window that kept nothing. */
    static final int FIRST_WINDOW = 2;

    private final PruneRun run;
    private final Acdc.Options options;
    private final int[] order;
    private final Acdc.TrialObserver observer;
    private final boolean trimLastBlock; // trial passes compute the last block for the output's position only
    private final boolean klBounds;      // removals settled by a bound on the KL increase where it is decisive
    private final int window;            // the most speculative trials per batched pass
    private int nextWindow;              // the next batched pass's trials: FIRST_WINDOW after a kept edge, doubling
    private final PatchableModel model;
    private final Graph graph;
    private final List<Edge> edges;
    private final float[] taus;
    private final PointerScope scope;
    private final NoGradGuard noGrad;

    // per-edge facts, graph edge positions
    private final String[] edgeModule;
    private final int[] edgeOffset;      // position in its module's flattened mask
    private final int[] edgeBlock;       // the block a trial restarts at
    private final boolean[] noEffect;    // ablating it provably leaves the output unchanged

    // the first batch, fixed for the whole run
    private final Tensor input;
    private final Tensor padding;
    private final Tensor patch;          // [nSrc, batch, seq, dModel] corrupt source outputs
    private final Tensor cleanCurr;      // [nSrc, batch, seq, dModel] clean source outputs
    private final Tensor[] residPre;     // per block [batch, seq, dModel], transformers only
    private final Tensor cleanOut;       // [batch, (seq,) vocab]
    private final Tensor cleanLogprobs;  // KL only
    private final Tensor cleanProbs;     // KL only: exp(cleanLogprobs)
    private final AcdcKl fusedKl;        // KL from the final norm's output without the logits, or null (plain KL)
    private final long batchSize;
    // per pass, per window size k: {patch, current outputs} repeated k times, [nSrc, k·batch, seq, dModel]. Contiguous
    // (a narrowed batch of one larger buffer is not, and the patched pass would copy its rows at every destination);
    // made on first use in the pass's scope. The current-output buffer starts clean: windows start at the same or
    // earlier blocks as the pass goes on, and each overwrites its blocks' rows before they are read.
    private final Map<Integer, Tensor[]> windowBuffers = new HashMap<>();
    // repeated `window` times along the batch (trial-major), for batched trials; windows use leading rows
    private final Tensor[] residPreRep;  // per block [window·batch, seq, dModel]
    private final Tensor paddingRep;     // [window·batch, seq] or null
    private final NormScales cleanScales;     // the clean run's norm scales (models with post-norms), else null
    private final NormScales cleanScalesRep;  // the same repeated for the batched trials, or null
    private final Map<String, Integer> moduleStart = new HashMap<>();   // first graph edge position of each module

    // data-parallel: this rank's prompts of the batch; faithfulness sums are exchanged per forward pass
    private final Collective dist;
    private final boolean split;         // ranks hold parts of the batch (else every rank runs all of it)
    private final long fullBatchSize;    // prompts of the whole batch
    private final PatchableModel.KvCachePart kvPart;

    // the search state (what a checkpoint holds)
    private int tauIndex;
    private int position;
    private float prevFaith;
    private final boolean[] ablated;
    private final int[] scoreTau;

    // With klBounds (fused KL, batched trials): the accepted state's final-norm output rows (the last removed trial's),
    // null while unknown; whether prevFaith holds its value (else it is computed from refRows when a decision needs
    // it); a lower bound on prevFaith − KL(refRows) in real arithmetic; an upper bound on |prevFaith|.
    private float[] refRows;
    private boolean prevFaithKnown = true;
    private double prevFaithOffsetMin;
    private double prevFaithMagnitude;
    private long settledByBound;
    private long klComputed;          // trials' (and accepted states') KLs computed with bounds on

    private final AcdcCheckpoint identity;
    private long lastCheckpointNanos = System.nanoTime();
    private int decisionsSinceCheckpoint;
    private long trials;

    AcdcSearch(PruneRun run, Acdc.Options options, int[] order, Acdc.TrialObserver observer, int window,
               boolean skip, boolean fuseKl) {
        this(run, options, order, observer, window, skip, fuseKl, true, true);
    }

    /** With {@code klBounds} on (see the full constructor). */
    AcdcSearch(PruneRun run, Acdc.Options options, int[] order, Acdc.TrialObserver observer, int window,
               boolean skip, boolean fuseKl, boolean trimLastBlock) {
        this(run, options, order, observer, window, skip, fuseKl, trimLastBlock, true);
    }

    /**
     * @param trimLastBlock let trial passes compute only what the output needs in the last block (see
     *                      {@link PatchableModel#outputsOnly()}); false for tests that compare against the full passes
     * @param klBounds      with the fused KL, remove an edge without computing its trial's KL where a bound on the
     *                      increase proves it below τ ({@link #settles}); false for tests that compare the decisions
     */
    AcdcSearch(PruneRun run, Acdc.Options options, int[] order, Acdc.TrialObserver observer, int window,
               boolean skip, boolean fuseKl, boolean trimLastBlock, boolean klBounds) {
        if (window < 1) throw new IllegalArgumentException("window must be >= 1, got " + window);
        PatchableModel m = run.model();
        // Batched trials need the start-at-block path, no KV cache (caches exist per batch size), and memory for
        // `window` copies of the source outputs (capped at 256 MiB).
        long perCopy = 4L * m.nSrcs() * run.train().get(0).batchSize() * run.train().get(0).seqLen()
            * m.model().dModel();
        int fit = (int) Math.max(1, Math.min(window, (256L << 20) / Math.max(1, perCopy)));
        this.window = m.supportsBlockPasses() && !m.hasKvCaches() ? fit : 1;
        this.run = run;
        this.options = options;
        this.order = order;
        this.observer = observer;
        this.trimLastBlock = trimLastBlock;
        this.klBounds = klBounds && observer == null;
        this.model = run.model();
        this.graph = model.graph();
        this.edges = graph.edges();
        this.taus = new float[options.taus().size()];
        for (int i = 0; i < taus.length; i++) taus[i] = (float) (double) options.taus().get(i);
        int n = edges.size();
        edgeModule = new String[n];
        edgeOffset = new int[n];
        edgeBlock = new int[n];
        int offset = 0;
        for (DestModule dm : graph.destModules()) {
            moduleStart.put(dm.moduleName(), offset);
            int block = Acdc.blockOf(dm);
            for (int i = 0; i < dm.maskNumel(); i++) {
                edgeModule[offset + i] = dm.moduleName();
                edgeOffset[offset + i] = i;
                edgeBlock[offset + i] = block;
            }
            offset += dm.maskNumel();
        }
        ablated = new boolean[n];
        scoreTau = new int[n];
        Arrays.fill(scoreTau, -1);

        PromptPairBatch whole = run.train().get(0);
        dist = run.collective();
        // the same on every rank: the model setup and the batch are
        split = dist.isDistributed() && whole.batchSize() >= dist.worldSize();
        fullBatchSize = whole.batchSize();
        int[] part = split ? dist.rowRange(whole.batchSize()) : new int[] {0, whole.batchSize()};
        PromptPairBatch batch = whole.rows(part[0], part[1]);
        kvPart = m.kvCachePart(whole.batchSize(), part[0], part[1]);   // the prefix cache of this rank's prompts
        scope = new PointerScope();
        noGrad = new NoGradGuard();
        try {
            input = Inputs.clean(batch);
            padding = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
            patch = Ablations.srcAblations(model, Inputs.corrupt(batch),
                Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
            if (model.supportsBlockPasses()) {
                residPre = new Tensor[model.model().nLayers()];
                cleanCurr = model.srcOutputs(input, padding, residPre);
            } else {
                residPre = null;
                cleanCurr = model.srcOutputs(input, padding, null);
            }
            cleanOut = model.forward(input, padding);
            cleanScales = model.normScales(input, padding);   // the srcOutputs pass above left them: no extra pass
            if (options.faithfulness() == Acdc.Faithfulness.KL_DIV) {
                cleanLogprobs = cleanOut.log_softmax(-1);
                cleanProbs = cleanLogprobs.exp();
            } else {
                cleanLogprobs = null;
                cleanProbs = null;
            }
            Tensor[] affine = residPre != null ? model.model().affineUnembedding() : null;
            // The fused KL goes with the native kernels (the reference kernels keep the plain libtorch KL); the
            // data-parallel path exchanges per-rank sums of the plain KL.
            fusedKl = fuseKl && cleanLogprobs != null && !split && model.kernels() instanceof NativeKernels
                && AcdcKl.supported(affine) && cleanOut.scalar_type().intern() == torch.ScalarType.Float
                ? new AcdcKl(cleanLogprobs, cleanProbs, model.derived(AcdcKl.Tables.class,
                    () -> AcdcKl.Tables.owned(affine[0], affine[1]))) : null;
            noEffect = skip ? noEffectEdges(batch) : new boolean[n];
            batchSize = batch.batchSize();
            if (this.window > 1) {
                residPreRep = new Tensor[residPre.length];
                for (int b = 0; b < residPre.length; b++) residPreRep[b] = residPre[b].repeat(this.window, 1, 1);
                paddingRep = padding == null ? null : padding.repeat(this.window, 1);
                cleanScalesRep = cleanScales == null ? null : cleanScales.repeat(this.window);
            } else {
                paddingRep = null;
                residPreRep = null;
                cleanScalesRep = null;
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        identity = new AcdcCheckpoint(AcdcCheckpoint.FORMAT, AcdcCheckpoint.graphFingerprint(graph), options.taus(),
            options.faithfulness().name(), Long.toHexString(batch.key()), AcdcCheckpoint.orderFingerprint(order),
            run.identity(), 0, 0, 0f, new int[0], new int[0]);
    }

    /** Runs (or resumes) every pass and returns the scores. */
    PruneScores run() {
        Path file = run.checkpoint();
        if (file != null && Files.exists(file)) restore(AcdcCheckpoint.read(file), file);
        try {
            for (; tauIndex < taus.length; tauIndex++, position = 0) {
                runPass();
                if (file != null) writeCheckpoint(file);
            }
        } catch (RuntimeException e) {
            // Every decision counted in `position` is complete, so the state is consistent whatever was interrupted.
            if (file != null) {
                try {
                    writeCheckpoint(file);
                    if (e instanceof CancellationException) {
                        LOG.warn("ACDC stopped: {} of {} decisions of pass {}/{} (τ={}) and the passes before it are saved "
                            + "in {}; run again with the same checkpoint file to resume", position, order.length,
                            tauIndex + 1, taus.length, options.taus().get(Math.min(tauIndex, taus.length - 1)), file);
                    }
                } catch (RuntimeException w) {
                    e.addSuppressed(w);
                }
            } else if (e instanceof CancellationException) {
                LOG.warn("ACDC stopped after {} of {} decisions of pass {}/{}; nothing was saved (no checkpoint file; the "
                    + "command line's --checkpoint-dir keeps finished work)", position, order.length, tauIndex + 1, taus.length);
            }
            throw e;
        }
        float[] scores = new float[edges.size()];
        for (int i = 0; i < scores.length; i++) {
            scores[i] = scoreTau[i] < 0 ? Float.POSITIVE_INFINITY : taus[scoreTau[i]];
        }
        return PruneScores.ofFlat(graph, scores);
    }

    private void runPass() {
        String task = "ACDC τ=" + options.taus().get(tauIndex);
        if (position == 0) {
            Arrays.fill(ablated, false);
            prevFaith = 0f;
        }
        // the accepted state's output rows are known again after its first removal with a batched trial
        refRows = null;
        prevFaithKnown = true;
        nextWindow = Math.min(FIRST_WINDOW, window);
        model.setAllMasks(0.0);
        for (int i = 0; i < ablated.length; i++) if (ablated[i]) setMask(i, 1f);
        float tau = taus[tauIndex];
        // Trials read only the output: with LAST_SEQ on a graph without token positions, the last block of a trial
        // pass computes the queries, attention output and MLP of the last position only (keys and values of every
        // position); its sources' rows in the current-output buffers then hold the last position only, which is all
        // that later trials read of them.
        try (PointerScope passScope = new PointerScope();
             PatchableModel.PatchMode mode = model.patchMode(patch, cleanCurr.clone()).freezeNormScales(cleanScales);
             PatchableModel.OutputsOnly outputsOnly = trimLastBlock ? model.outputsOnly() : null) {
            windowBuffers.clear();                // (tensors of the last pass, freed with its scope)
            while (position < order.length) {
                Progress.checkInterrupted(task);
                int e = order[position];
                if (noEffect[e]) {
                    decide(e, prevFaith, tau, task);      // the output is bitwise unchanged: 0 < tau
                } else if (residPre == null) {
                    resolvePrevFaith();
                    setMask(e, 1f);
                    decide(e, fullTrial(e), tau, task);
                } else if (window == 1) {
                    resolvePrevFaith();
                    setMask(e, 1f);
                    decide(e, blockTrial(e), tau, task);
                } else {
                    batchedTrials(tau, task);
                }
            }
        }
    }

    /**
     * Tries the next up to {@code nextWindow} edges that need a forward pass in one pass over {@code k·batch} rows:
     * trial j runs on rows {@code [j·batch, (j+1)·batch)} with the masks of the accepted state plus the edges
     * up to and including its own, as if every earlier edge of the window had been removed (most are). Decisions
     * are then taken in order; after the first kept edge the later trials are void and are tried again. Each row
     * block sees exactly the computation of a lone trial, so the decisions are the sequential ones.
     */
    private void batchedTrials(float tau, String task) {
        int[] trialPos = new int[nextWindow];
        int k = 0;
        int end = position;
        while (end < order.length && k < nextWindow) {
            if (!noEffect[order[end]]) trialPos[k++] = end;
            end++;
        }
        end = trialPos[k - 1] + 1;
        trials += k;
        int startBlock = edgeBlock[order[trialPos[k - 1]]];     // the earliest: layers descend
        long rows = batchSize * (long) k;
        // in the pass's scope, before the window's own
        Tensor[] buffers = windowBuffers.computeIfAbsent(k, n -> new Tensor[] {
            patch.repeat(1, n, 1, 1), cleanCurr.repeat(1, n, 1, 1)});
        try (PointerScope windowScope = new PointerScope()) {
            Map<String, Tensor> masks = trialMasks(trialPos, k, startBlock);
            Tensor finalResid;
            try (PatchableModel.PatchMode m = model.patchMode(buffers[0], buffers[1])
                    .freezeNormScales(cleanScalesRep == null ? null : cleanScalesRep.firstRows(rows))) {
                finalResid = model.residualFromBlock(startBlock, residPreRep[startBlock].narrow(0, 0, rows),
                    paddingRep == null ? null : paddingRep.narrow(0, 0, rows), masks);
            }
            // [k·batch, (seq,) vocab]; with the fused KL no logits at all (unless an observer wants them), only the
            // final norm's output
            Tensor logits = fusedKl == null ? model.unembed(finalResid) : null;
            Tensor normed = fusedKl == null ? null : model.model().finalNorm(finalResid);
            // split: every trial's sum over this rank's prompts, exchanged in one all-reduce
            float[] global = split ? globalFaithfulness(logits, k) : null;
            // fused without bounds: every trial's KL in one kernel call, which reads W_U (12.9 MB for GPT-2's vocabulary)
            // once per window instead of once per trial (a void trial's KL is wasted, but few are: windows restart
            // small after a kept edge); with bounds, only the KLs the walk needs (windowKls), in one call as well.
            // Either way each trial's value is the one a call for its rows alone gives.
            boolean bounds = fusedKl != null && klBounds;
            double[] klSums = fusedKl == null || bounds ? null : fusedKl.sums(normed, k);
            Tensor normedRows = bounds ? normed.reshape(-1, normed.size(normed.dim() - 1)).contiguous() : null;
            float[] hostRows = bounds ? floats(normedRows) : null;
            int rowsPerTrial = bounds ? fusedKl.rows() : 0;
            int perTrial = bounds ? rowsPerTrial * (int) normedRows.size(1) : 0;
            // with bounds: the KLs the walk below is predicted to need, in one call; [k + 1], the last for the accepted
            // state before the window, NaN where not computed
            double[] windowKl = bounds ? windowKls(normedRows, hostRows, perTrial, rowsPerTrial, k) : null;
            int t = 0;
            while (position < end) {
                int e = order[position];
                if (noEffect[e]) {
                    decide(e, prevFaith, tau, task);
                    continue;
                }
                // per trial (rows are independent), so void trials cost no more than their logits (fused: their KL)
                float faith;
                if (bounds) {
                    if (settles(hostRows, t * perTrial, refRows, 0, prevFaithOffsetMin, prevFaithMagnitude)) {
                        settledByBound++;
                        removeBySettledBound(e, hostRows, t * perTrial, perTrial, tau, task);
                        t++;
                        continue;
                    }
                    // The accepted state is the previous trial's (every earlier trial of the window was removed) or,
                    // for the first, the one before the window. The values come from the window's call where it
                    // predicted the need, else from a call now: a row's value is the one a call for its rows alone
                    // gives, so either way they are the values of the search without bounds.
                    if (!prevFaithKnown) {
                        double ref = windowKl[t == 0 ? k : t - 1];
                        if (Double.isNaN(ref)) {
                            resolvePrevFaith();
                        } else {
                            setPrevFaith(fusedKl.mean(ref));
                        }
                    }
                    if (Double.isNaN(windowKl[t])) klComputed++;
                    faith = fusedKl.mean(Double.isNaN(windowKl[t]) ? fusedKl.sum(normedRows.narrow(0,
                        (long) t * rowsPerTrial, rowsPerTrial)) : windowKl[t]);
                } else if (fusedKl != null) {
                    faith = fusedKl.mean(klSums[t]);
                    if (observer != null) observe(e, model.unembed(finalResid.narrow(0, t * batchSize, batchSize)));
                } else {
                    Tensor out = logits.narrow(0, t * batchSize, batchSize);
                    faith = global != null ? global[t]
                        : faithfulness(out, cleanLogprobs == null ? null : out.log_softmax(-1));
                    if (observer != null) observe(e, out);
                }
                t++;
                boolean removed = decide(e, faith, tau, task);
                if (removed && bounds) {
                    // the accepted state's rows and value are this trial's
                    refRows = Arrays.copyOfRange(hostRows, (t - 1) * perTrial, t * perTrial);
                    prevFaithOffsetMin = -fusedKl.valueError(refRows, 0, faith);
                    prevFaithMagnitude = Math.abs(faith);
                }
                if (!removed) {     // kept: the later trials assumed its removal
                    nextWindow = Math.min(FIRST_WINDOW, window);
                    return;
                }
            }
            nextWindow = Math.min(2 * nextWindow, window);
        }
    }

    /**
     * The per-trial masks of every destination module from {@code startBlock} on, {@code [k·batch, seq?, head?, nIn]}:
     * trial j ablates the accepted edges plus every edge of the window up to its own.
     */
    private Map<String, Tensor> trialMasks(int[] trialPos, int k, int startBlock) {
        Map<String, Tensor> out = new HashMap<>();
        for (DestModule dm : graph.destModules()) {
            if (Acdc.blockOf(dm) < startBlock) continue;
            int numel = dm.maskNumel();
            int base = moduleStart.get(dm.moduleName());
            float[] host = new float[k * numel];
            for (int i = 0; i < numel; i++) if (ablated[base + i]) host[i] = 1f;
            int q = position;
            for (int j = 0; j < k; j++) {
                if (j > 0) System.arraycopy(host, (j - 1) * numel, host, j * numel, numel);
                for (; q <= trialPos[j]; q++) {
                    int e = order[q];
                    if (e >= base && e < base + numel) host[j * numel + e - base] = 1f;
                }
            }
            long[] shape = dm.maskShape();
            long[] trialShape = new long[shape.length + 1];
            long[] expanded = new long[shape.length + 2];
            long[] rowShape = new long[shape.length + 1];
            trialShape[0] = k;
            expanded[0] = k;
            expanded[1] = batchSize;
            rowShape[0] = (long) k * batchSize;
            for (int d = 0; d < shape.length; d++) {
                trialShape[d + 1] = shape[d];
                expanded[d + 2] = shape[d];
                rowShape[d + 1] = shape[d];
            }
            Tensor m = HostTensor.ofFloats(host, trialShape).toTensor().to(patch.device(), patch.scalar_type());
            out.put(dm.moduleName(), m.unsqueeze(1).expand(expanded).reshape(rowShape));
        }
        return out;
    }

    /**
     * Whether the trial whose final-norm rows start at {@code offset} of {@code rows} is certainly removed at τ,
     * without its KL: {@code fl(KL_t) − prevFaith < τ} follows from {@code KL(h_t) − KL(ref) ≤ B}
     * ({@link AcdcKl#increaseBound}), {@code fl(KL_t) ≤ KL(h_t) + err_t} ({@link AcdcKl#valueError}) and
     * {@code prevFaith ≥ KL(ref) + prevFaithOffsetMin}, all in real arithmetic, with a margin for the float64 test
     * itself. In exact arithmetic this is the same decision as the comparison of the two computed values, so it is
     * taken only where those values could not decide otherwise.
     */
    private boolean settles(float[] rows, int offset, float[] ref, int refOffset, double offsetMin, double faithMagnitude) {
        if (ref == null) return false;
        double increase = fusedKl.increaseBound(rows, offset, ref, refOffset);
        double magnitude = faithMagnitude + Math.max(0, increase) + 1;
        double error = fusedKl.valueError(rows, offset, magnitude);
        return increase + error - offsetMin + 1e-12 < options.taus().get(tauIndex);
    }

    /**
     * The KL sums a walk through a window of {@code k} trials is predicted to need, computed in one kernel call
     * ({@code W_U} read once instead of once per call): {@code [k + 1]}, entry k for the accepted state before the
     * window, NaN where not predicted. The prediction replays the walk assuming every trial is removed (a kept one
     * voids the rest), with {@link #settles} against the previous trial and, for trials it cannot settle, the bounds
     * an exact removal would leave taken at their widest (so it may compute a value the walk then settles without,
     * never the other way round but for rounding in the magnitudes; the walk computes any value it lacks).
     */
    private double[] windowKls(Tensor normedRows, float[] rows, int perTrial, int rowsPerTrial, int k) {
        double tau = options.taus().get(tauIndex);
        boolean[] need = new boolean[k + 1];
        float[] ref = refRows;
        int refOffset = 0;
        int refTrial = k;                       // k: the accepted state before the window
        boolean refKnown = prevFaithKnown;
        double offsetMin = prevFaithOffsetMin, magnitude = prevFaithMagnitude;
        int count = 0;
        for (int t = 0; t < k; t++) {
            int offset = t * perTrial;
            if (settles(rows, offset, ref, refOffset, offsetMin, magnitude)) {
                refKnown = false;               // as removeBySettledBound
            } else {
                need[t] = true;
                if (!refKnown && ref != null) need[refTrial] = true;
                refKnown = true;
            }
            magnitude += tau + 1e-3;
            offsetMin = -fusedKl.valueError(rows, offset, magnitude);
            ref = rows;
            refOffset = offset;
            refTrial = t;
        }
        double[] out = new double[k + 1];
        Arrays.fill(out, Double.NaN);
        List<Tensor> parts = new java.util.ArrayList<>();
        for (int t = 0; t <= k; t++) {
            if (!need[t]) continue;
            parts.add(t == k ? refRowsTensor() : normedRows.narrow(0, (long) t * rowsPerTrial, rowsPerTrial));
            count++;
        }
        if (count == 0) return out;
        klComputed += count;
        double[] sums = fusedKl.sums(count == 1 ? parts.get(0)
            : torch.cat(new TensorVector(parts.toArray(new Tensor[0])), 0), count);
        for (int t = 0, i = 0; t <= k; t++) {
            if (need[t]) out[t] = sums[i++];
        }
        return out;
    }

    /**
     * Removes edge {@code e} settled by {@link #settles}: as {@link #decide} would, except that the new prevFaith (the
     * trial's KL) is left uncomputed; it is the value of the rows now held in {@link #refRows}.
     */
    private void removeBySettledBound(int e, float[] rows, int offset, int length, float tau, String task) {
        double increase = fusedKl.increaseBound(rows, offset, refRows);
        refRows = Arrays.copyOfRange(rows, offset, offset + length);
        prevFaithKnown = false;
        // the new value is below the old one plus τ (and a real KL is not below −1e-6 or so); its distance from the
        // rows' real KL is bounded by valueError
        prevFaithMagnitude = prevFaithMagnitude + Math.min(Math.max(0, increase), options.taus().get(tauIndex)) + 1e-3;
        prevFaithOffsetMin = -fusedKl.valueError(refRows, 0, prevFaithMagnitude);
        record(e, true, tau, task);
    }

    /** Computes prevFaith from {@link #refRows} if a settled removal left it uncomputed. */
    private void resolvePrevFaith() {
        if (prevFaithKnown) return;
        klComputed++;
        try (PointerScope s = new PointerScope()) {
            setPrevFaith(fusedKl.mean(fusedKl.sum(refRowsTensor())));
        }
    }

    /** prevFaith computed from {@link #refRows}. */
    private void setPrevFaith(float value) {
        prevFaith = value;
        prevFaithKnown = true;
        prevFaithMagnitude = Math.abs(prevFaith);
        prevFaithOffsetMin = -fusedKl.valueError(refRows, 0, prevFaith);
    }

    /** {@link #refRows} as a {@code [rows, dModel]} tensor (the same floats, so the kernel gives the same value). */
    private Tensor refRowsTensor() {
        return org.bytedeco.pytorch.AbstractTensor.create(refRows, refRows.length)
            .reshape(fusedKl.rows(), refRows.length / fusedKl.rows());
    }

    private static float[] floats(Tensor t) {
        float[] out = new float[(int) t.numel()];
        new FloatPointer(t.data_ptr()).get(out);
        return out;
    }

    /** Trials removed by {@link #settles} without their KL (tests). */
    long settledByBound() {
        return settledByBound;
    }

    /** KL values computed with bounds on: trials' and accepted states' (tests). */
    long klComputed() {
        return klComputed;
    }

    /** One trial restarted at its destination's block, with the model's own masks (KV-cached models, window 1). */
    private float blockTrial(int e) {
        trials++;
        try (PointerScope trialScope = new PointerScope()) {
            Tensor resid = model.residualFromBlock(edgeBlock[e], residPre[edgeBlock[e]], padding);
            if (fusedKl != null) {
                if (observer != null) observe(e, model.unembed(resid));
                return fusedKl.mean(model.model().finalNorm(resid));
            }
            Tensor out = model.unembed(resid);
            if (observer != null) observe(e, out);
            return split ? globalFaithfulness(out, 1)[0] : faithfulness(out, cleanLogprobs == null ? null : out.log_softmax(-1));
        }
    }

    /** A full forward pass (models without a start-at-block path). */
    private float fullTrial(int e) {
        trials++;
        try (PointerScope trialScope = new PointerScope()) {
            Tensor out = model.forward(input, padding);
            if (observer != null) observe(e, out);
            return split ? globalFaithfulness(out, 1)[0] : faithfulness(out, cleanLogprobs == null ? null : out.log_softmax(-1));
        }
    }

    /**
     * Takes the decision for edge {@code e}, whose mask is 1, at faithfulness {@code faith}, and reports it.
     *
     * @return whether the edge was removed
     */
    private boolean decide(int e, float faith, float tau, String task) {
        // AutoCircuit: faith = kl.item() and prev_faith are Python floats, so the test runs in double precision
        double diff = (double) faith - (double) prevFaith;
        boolean removed = diff < options.taus().get(tauIndex);
        if (removed) prevFaith = faith;
        record(e, removed, tau, task);
        return removed;
    }

    /** Sets edge {@code e}'s mask for the decision, records a removal's score, and moves on. */
    private void record(int e, boolean removed, float tau, String task) {
        setMask(e, removed ? 1f : 0f);
        if (removed) {
            ablated[e] = true;
            if (scoreTau[e] < 0 || tau < taus[scoreTau[e]]) scoreTau[e] = tauIndex;
        }
        position++;
        run.progress().update(task, (long) tauIndex * order.length + position, (long) taus.length * order.length);
        maybeCheckpoint();
    }

    private void observe(int e, Tensor out) {
        float[] masks = new float[ablated.length];
        for (int i = 0; i < masks.length; i++) masks[i] = ablated[i] ? 1f : 0f;
        masks[e] = 1f;
        observer.trial(tauIndex, edges.get(e), HostTensor.of(out.contiguous()), () -> PruneScores.ofFlat(graph, masks));
    }

    /**
     * {@code multibatch_kl_div(log_softmax(out), clean)} = Σ p·(log p − log q) / rows, or {@code mse(out, clean)},
     * with the reference's operations in the reference's order.
     */
    private float faithfulness(Tensor out, Tensor logprobs) {
        if (options.faithfulness() == Acdc.Faithfulness.KL_DIV) {
            long rows = out.numel() / out.shape()[(int) out.dim() - 1];
            Tensor kl = cleanProbs.mul(cleanLogprobs.sub(logprobs)).sum();
            return kl.div(new Scalar((double) rows)).item_float();
        }
        return out.sub(cleanOut).pow(new Scalar(2)).mean().item_float();
    }

    /**
     * The faithfulness of {@code k} trials over the whole batch, from {@code outputs} ({@code [k·part, (seq,) vocab]},
     * trial-major) of this rank's part: each trial's sum over this rank's rows (KL: Σ p·(log p − log q) per output
     * row; MSE: Σ squared error), exchanged exactly (each rank fills its own slots of a zero vector, so the all-reduce
     * only adds zeros), then added in rank order and divided by the whole batch's rows or elements. The same bits
     * on every rank; equal to one process's value up to the order of float additions.
     */
    private float[] globalFaithfulness(Tensor outputs, int k) {
        int w = dist.worldSize();
        double[] slots = new double[w * k];
        long perPrompt;
        try (PointerScope s = new PointerScope()) {
            for (int t = 0; t < k; t++) {
                Tensor out = k == 1 ? outputs : outputs.narrow(0, t * batchSize, batchSize);
                Tensor sum = options.faithfulness() == Acdc.Faithfulness.KL_DIV
                    ? cleanProbs.mul(cleanLogprobs.sub(out.log_softmax(-1))).sum()
                    : out.sub(cleanOut).pow(new Scalar(2)).sum();
                slots[dist.rank() * k + t] = sum.item_double();
            }
            long units = options.faithfulness() == Acdc.Faithfulness.KL_DIV
                ? cleanOut.numel() / cleanOut.shape()[(int) cleanOut.dim() - 1]    // output rows
                : cleanOut.numel();                                               // elements
            perPrompt = units / batchSize;
            Tensor all = AbstractTensor.create(slots, w * k);
            dist.allReduceSumInPlace(all);
            all.data_ptr_double().get(slots);
        }
        double denominator = (double) perPrompt * fullBatchSize;
        float[] out = new float[k];
        for (int t = 0; t < k; t++) {
            double sum = 0;
            for (int r = 0; r < w; r++) sum += slots[r * k + t];
            out[t] = (float) (sum / denominator);
        }
        return out;
    }

    private void setMask(int e, float value) {
        Tensor mask = model.mask(edgeModule[e]);
        if (mask.is_cpu() && mask.scalar_type().intern() == torch.ScalarType.Float && mask.is_contiguous()) {
            // a plain store: no op dispatch for the one entry that changes
            new FloatPointer(mask.data_ptr()).put(edgeOffset[e], value);
        } else {
            try (PointerScope s = new PointerScope()) {
                mask.view(-1).narrow(0, edgeOffset[e], 1).fill_(new Scalar(value));
            }
        }
    }

    /**
     * Edges whose ablation provably leaves the output bitwise unchanged when they are visited (class comment,
     * rule 2).
     */
    private boolean[] noEffectEdges(PromptPairBatch batch) {
        boolean[] out = new boolean[edges.size()];
        boolean token = graph.seqLen().isPresent();
        // [nSrc, seq] (token graphs) or [nSrc]: where patch − clean is exactly zero
        Tensor diff = patch.sub(cleanCurr).abs();
        Tensor maxAbs = token
            ? diff.amax(new long[] {1, 3}, false)
            : diff.amax(new long[] {1, 2, 3}, false);
        // split: zero over the whole batch = zero on every rank's part (the maxima are ≥ 0, so their sum tells)
        if (split) {
            maxAbs = maxAbs.cpu().contiguous();       // on the host: Gloo's tensors (the model may be on a GPU)
            dist.allReduceSumInPlace(maxAbs);
        }
        float[] zero = HostTensor.of(maxAbs.contiguous()).floats();
        int seqLen = token ? graph.seqLen().getAsInt() : 1;
        int lastBlock = residPre == null ? -1 : residPre.length - 1;
        boolean lastOnly = residPre != null && token && model.outputSlice() == OutputSlice.LAST_SEQ;
        for (int i = 0; i < out.length; i++) {
            Edge e = edges.get(i);
            int s = e.seqIdx().orElse(0);
            if (zero[e.src().srcIdx() * seqLen + s] == 0f) {
                out[i] = true;
            } else if (lastOnly && s != seqLen - 1 && edgeBlock[i] == lastBlock && perPositionOnly(edgeModule[i])) {
                out[i] = true;
            }
        }
        return out;
    }

    /** Last-block destinations that feed nothing but their own position (no K/V of any attention). */
    private static boolean perPositionOnly(String module) {
        return module.endsWith(".hook_q_input") || module.endsWith(".hook_mlp_in")
            || module.endsWith(".hook_resid_mid") || module.endsWith(".hook_resid_post");
    }

    private void maybeCheckpoint() {
        Path file = run.checkpoint();
        if (file == null) return;
        decisionsSinceCheckpoint++;
        if (decisionsSinceCheckpoint >= options.checkpointEdges()
            || System.nanoTime() - lastCheckpointNanos >= options.checkpointInterval().toNanos()) {
            writeCheckpoint(file);
        }
    }

    private void writeCheckpoint(Path file) {
        resolvePrevFaith();
        int count = 0;
        for (boolean a : ablated) if (a) count++;
        int[] abl = new int[count];
        for (int i = 0, j = 0; i < ablated.length; i++) if (ablated[i]) abl[j++] = i;
        new AcdcCheckpoint(identity.format(), identity.graph(), identity.taus(), identity.criterion(),
            identity.firstBatch(), identity.visitOrder(), identity.identity(), tauIndex, position, prevFaith, abl, scoreTau.clone())
            .write(file);
        decisionsSinceCheckpoint = 0;
        lastCheckpointNanos = System.nanoTime();
    }

    private void restore(AcdcCheckpoint c, Path file) {
        c.requireSameRun(identity, file, edges.size());
        tauIndex = c.tauIndex();
        position = c.position();
        prevFaith = c.prevFaith();
        Arrays.fill(ablated, false);
        for (int a : c.ablated()) ablated[a] = true;
        System.arraycopy(c.scoreTau(), 0, scoreTau, 0, scoreTau.length);
        if (position == order.length && tauIndex < taus.length) {
            tauIndex++;
            position = 0;
        }
    }

    /** Forward passes run so far (trials that were not skipped). */
    long trials() {
        return trials;
    }

    @Override
    public void close() {
        noGrad.close();
        scope.close();
        kvPart.close();
    }
}
