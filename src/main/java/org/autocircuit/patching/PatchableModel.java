package org.autocircuit.patching;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.SrcModule;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.kernels.MaskLayout;
import org.autocircuit.kernels.RunningDeltaSum;
import org.autocircuit.model.HeadInputs;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedModel;
import org.autocircuit.model.KvCache;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.OwnedTensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * A model whose edges can be patched (AutoCircuit's {@code PatchableModel}).
 *
 * <p>Every destination module owns a mask shaped {@code [seq?][head?][nIn]}. In patch mode, each
 * forward pass records every source's output into a buffer {@code curr [nSrc, batch, seq, dModel]}
 * and changes every destination's input to
 * <pre>  input + Σ_src mask[.., src] · (patch[src] − curr[src])</pre>
 * so mask 0 keeps an edge and 1 replaces its contribution by the patch (ablation) value. Patching
 * therefore takes two passes: one that computes {@code patch} ({@link Ablations}), and the patched pass.
 * Where gradients must reach the current source outputs, each source module's output stays its own tensor in the
 * autograd graph and destinations concatenate what they read; where none must (no gradients, or
 * {@link #patchModeAtZeroMasks}), sources are written once into the reused {@code curr} buffer and destinations read
 * views of it, with a {@link org.autocircuit.kernels.RunningDeltaSum} for the native kernels' binary-mask path.
 * {@link #maskBatchSize} gives every mask a leading batch dimension for per-example gradients.
 *
 * <h2>Norm scales</h2>
 * A model whose blocks normalise a sum of sources (Gemma-2's norm after the attention output) writes that norm per
 * source with one scale per prompt and position ({@link HookedModel#normScaleHooks()}). In every patched pass that
 * scale is the unpatched run's of the pass's input ({@link NormScales}), so the sources stay additive: passes from
 * the first block find it by their input (computing it once per input, without gradients, when no recent unpatched
 * pass left it), passes from a later block are given it ({@link PatchMode#freezeNormScales}). Other models have no
 * such hook points, and nothing of this runs for them.
 *
 * <h2>Ownership</h2>
 * The PatchableModel owns the wrapped {@link HookedModel} (its weights), the masks, and any
 * {@link KvCache}s handed to it; {@link #close()} frees them all. Forward passes and ablation values live
 * in the caller's {@link PointerScope}. {@link PatchMode}, {@link MaskTraining} and {@link MaskFnMode} are
 * try-with-resources scopes that restore the previous state when they close, so they nest. Every method
 * that "modifies the model's state" says so.
 *
 * <p>Not thread-safe: one forward pass at a time.
 */
public final class PatchableModel implements AutoCloseable {
    private final HookedModel model;
    private final Graph graph;
    private final OutputSlice slice;
    private final Kernels kernels;
    private final OwnedTensors owned = new OwnedTensors();
    private final Map<String, Tensor> masks = new LinkedHashMap<>();        // dest module → [seq?][head?][nIn]
    private final Map<String, DestModule> destByHook = new HashMap<>();
    private final Map<String, SrcModule> srcByHook = new HashMap<>();
    private final Map<String, Integer> srcModuleIndex = new HashMap<>();   // hook name → index in graph.srcModules()
    private final Map<Long, KvCache> kvCaches = new HashMap<>();
    private final int dModel;
    private final Map<String, Integer> normScaleIndex = new LinkedHashMap<>();   // model.normScaleHooks() → position
    private final CleanScaleCache cleanScales = new CleanScaleCache();

    // patch state; changed only through the AutoCloseable scopes below
    private Tensor patchSrcOuts;   // [nSrc, batch, seq, dModel], null outside patch mode
    private Tensor currSrcOuts;    // [nSrc, batch, seq, dModel] buffer kept across forward passes of one patch mode
    private boolean currGradients = true;   // false: patch differences are constants to autograd (see patchModeAtZeroMasks)
    private double uniformMask = 0.0;       // with currGradients false: the value of every mask (patchModeAtUniformMasks)
    private boolean sharedHeadInputs;       // every mask verified uniform: Q/K/V heads may share one input (see below)
    private boolean rowInputsFromSums;      // every mask verified uniform: one-row destinations read a running sum
    private final List<SharedHeads> pendingHeads = new ArrayList<>();   // awaiting PatchMode.backward
    private final List<RowDestination> pendingRows = new ArrayList<>(); // awaiting PatchMode.backward
    private MaskFn maskFn = MaskFn.NONE;
    private double dropoutP = 0.0;
    private boolean training = false;
    private long maskBatchSize = 0;         // > 0 while per-example masks are active (see maskBatchSize)
    private long sampleWhole = 0;           // > 0 while sampled masks are drawn for a whole batch (see sampleRowsOf)
    private long sampleStart = 0;
    private long compactHeadInputCount;     // Q/K/V groups patched in compact form, for tests
    private long uniformMaskTermCount;      // destinations given the uniform-mask gradient term, for tests
    private long sharedHeadInputCount;      // Q/K/V destinations given one shared input under autograd, for tests
    private long rowSumInputCount;          // destination inputs formed from the running difference sum, for tests
    private boolean outputsOnly;            // residual-only passes may trim the last block (see outputsOnly())
    private NormScales frozenScales;        // given by PatchMode.freezeNormScales, or null
    private volatile boolean closed;

    private PatchableModel(HookedModel model, Graph graph, OutputSlice slice, Kernels kernels) {
        this.model = model;
        this.graph = graph;
        this.slice = slice;
        this.kernels = kernels;
        this.dModel = model.dModel();
        try (PointerScope scope = new PointerScope()) {
            for (DestModule dm : graph.destModules()) {
                masks.put(dm.moduleName(), owned.adopt(torch.zeros(dm.maskShape(), onModelDevice(torch.ScalarType.Float))));
                destByHook.put(dm.moduleName(), dm);
            }
        }
        for (SrcModule sm : graph.srcModules()) srcByHook.put(sm.moduleName(), sm);
        for (int m = 0; m < graph.srcModules().size(); m++) srcModuleIndex.put(graph.srcModules().get(m).moduleName(), m);
        for (String name : model.normScaleHooks()) normScaleIndex.put(name, normScaleIndex.size());
    }

    /**
     * Wraps {@code model} (which the PatchableModel then owns).
     *
     * @param factorized  edges from every earlier source (true) or node patching through the residual (false)
     * @param slice       which output positions forward passes return
     * @param seqLen      one edge per token position (token circuits), or null
     * @param separateQkv separate Q, K, V destinations per head
     * @param kernels     the masked-difference implementation ({@link Kernels#reference()} always works);
     *                    null: the kernels for the model's device ({@link Kernels#best()} on the CPU, which follows
     *                    {@code -Dautocircuit.kernels}; {@link Kernels#forDevice} on a GPU)
     */
    public static PatchableModel of(HookedModel model, boolean factorized, OutputSlice slice, Integer seqLen,
                                    boolean separateQkv, Kernels kernels) {
        return of(model, factorized, slice, seqLen, separateQkv, GqaLayout.UNGROUPED, kernels);
    }

    /**
     * {@link #of(HookedModel, boolean, OutputSlice, Integer, boolean, Kernels)} with the K/V destinations of a
     * grouped-query-attention model laid out as {@code layout} says.
     */
    public static PatchableModel of(HookedModel model, boolean factorized, OutputSlice slice, Integer seqLen,
                                    boolean separateQkv, GqaLayout layout, Kernels kernels) {
        Objects.requireNonNull(model, "model");
        Graph graph = model.graph(factorized, separateQkv, seqLen, Objects.requireNonNull(layout, "layout"));
        if (kernels == null) {
            kernels = model.device() == org.autocircuit.kernels.Device.CPU ? Kernels.best() : Kernels.forDevice(model.device());
        }
        return new PatchableModel(model, graph, slice, kernels);
    }

    public Graph graph() {
        return graph;
    }

    public HookedModel model() {
        return model;
    }

    public OutputSlice outputSlice() {
        return slice;
    }

    public Kernels kernels() {
        return kernels;
    }

    public int nSrcs() {
        return graph.nSrcs();
    }

    /**
     * True when the wrapped model runs in blocks ({@link HookedModel#supportsBlockPasses()}): residual-only passes,
     * start-at-block passes and KV caches work.
     */
    public boolean supportsBlockPasses() {
        return model.supportsBlockPasses();
    }

    /** Whether KV caches were handed over (forward passes then need a batch size that has one). */
    public boolean hasKvCaches() {
        return !kvCaches.isEmpty();
    }

    /** Removes and frees the KV cache of this batch size, if any. */
    public void removeKvCache(long batchSize) {
        ensureOpen();
        KvCache old = kvCaches.remove(batchSize);
        if (old != null) old.close();
    }

    /** Hands a frozen prefix cache to the model; forward passes with its batch size use it. Takes ownership. */
    public void addKvCache(KvCache cache) {
        ensureOpen();
        if (!supportsBlockPasses()) {
            throw new IllegalStateException("KV caches need a model with block passes, not " + model.getClass().getSimpleName());
        }
        KvCache old = kvCaches.put(cache.batchSize(), cache);
        if (old != null) old.close();
    }

    /**
     * While the returned scope is open, forward passes over {@code count} prompts use rows {@code [start, start +
     * count)} of the KV cache built for batches of {@code whole} prompts: a data-parallel rank evaluating its part of a
     * batch. A cache that exists for {@code count} prompts is set aside meanwhile and restored by {@code close()}.
     * Nothing happens without a cache for {@code whole}, or when the part is the whole batch.
     */
    public KvCachePart kvCachePart(long whole, int start, int count) {
        ensureOpen();
        KvCache full = kvCaches.get(whole);
        if (full == null || count == whole) return () -> {};
        KvCache part = full.rows(start, count);
        KvCache setAside = kvCaches.put((long) count, part);
        return () -> {
            if (closed) return;     // the model freed every cache already
            KvCache mine = setAside == null ? kvCaches.remove((long) count) : kvCaches.put((long) count, setAside);
            if (mine != null) mine.close();
        };
    }

    /** The scope of {@link #kvCachePart}. */
    @FunctionalInterface
    public interface KvCachePart extends AutoCloseable {
        @Override
        void close();
    }

    // ---- forward passes ----

    /**
     * A forward pass: patched when in patch mode, plain otherwise.
     *
     * @param input         {@code [batch, seq]} tokens (or {@code [batch, seq, dModel]} for the micro model)
     * @param attentionMask {@code [batch, seq]} left-padding mask or null
     * @return the output with this model's {@link OutputSlice} applied
     */
    public Tensor forward(Tensor input, Tensor attentionMask) {
        return forward(input, attentionMask, false);
    }

    /**
     * {@link #forward} without the unembedding (transformers only): the final residual stream with this model's
     * {@link OutputSlice} applied, {@code [batch, (seq,) dModel]}; {@link #unembed} turns it (or several stacked
     * along the batch) into the same logits.
     */
    public Tensor forwardResidual(Tensor input, Tensor attentionMask) {
        return forwardResidual(input, attentionMask, null);
    }

    /**
     * {@link #forwardResidual(Tensor, Tensor)} that also records the residual stream before every block into
     * {@code residPre} (length nLayers, or null): a later pass whose first patched destination is in block {@code b}
     * or later can restart at block {@code b} from it ({@link #residualFromBlock}), since nothing before differs.
     */
    public Tensor forwardResidual(Tensor input, Tensor attentionMask, Tensor[] residPre) {
        if (!supportsBlockPasses()) {
            throw new IllegalStateException("forwardResidual needs a model with block passes, not " + model.getClass().getSimpleName());
        }
        return forward(input, attentionMask, true, residPre);
    }

    private Tensor forward(Tensor input, Tensor attentionMask, boolean residualOnly) {
        return forward(input, attentionMask, residualOnly, null);
    }

    private Tensor forward(Tensor input, Tensor attentionMask, boolean residualOnly, Tensor[] residPre) {
        ensureOpen();
        long batch = input.shape()[0];
        KvCache cache = cacheFor(batch);
        if (patchSrcOuts == null) {
            return run(input, attentionMask, cache, HookPoints.NONE, residualOnly, residPre, residualOnly && trimLastBlock(false));
        }
        checkPatchBatch(batch);
        if (!pendingHeads.isEmpty() || !pendingRows.isEmpty()) {
            throw new IllegalStateException("a patched pass is waiting for PatchMode.backward (some of its destinations' "
                + "mask gradients come from that call); run it before the next pass");
        }
        // A pass from the first block produces every source before any destination reads it. Where it may
        // (sharedBufferUsable) it writes them straight into the current-output buffer and destinations read views of
        // it; otherwise it needs no earlier buffer, and a new one is filled afterwards, outside autograd, for
        // inspection and later forwardFromBlock passes.
        boolean shared = sharedBufferUsable(true);
        PatchingHooks hooks = new PatchingHooks(patchSrcOuts, shared ? currSrcOuts : null, batch, shared);
        hooks.frozen = frozenScalesFor(input, attentionMask, cache);
        Tensor out = run(input, attentionMask, cache, hooks, residualOnly, residPre, residualOnly && trimLastBlock(shared));
        hooks.checkProjectionsSeen();
        currSrcOuts = shared ? currSrcOuts : hooks.currentOutputs(torch.empty_like(patchSrcOuts));
        return out;
    }

    /**
     * A patched forward pass that starts at block {@code startBlock} from its cached residual stream
     * {@code residPre [batch, seq, dModel]}. Sources in earlier blocks are read from this patch mode's
     * buffer (which the caller pre-filled, e.g. with clean source outputs). Transformers only.
     */
    public Tensor forwardFromBlock(int startBlock, Tensor residPre, Tensor attentionMask) {
        ensureOpen();
        if (!supportsBlockPasses()) {
            throw new IllegalStateException("forwardFromBlock needs a model with block passes, not " + model.getClass().getSimpleName());
        }
        if (patchSrcOuts == null) throw new IllegalStateException("forwardFromBlock needs patch mode");
        long batch = residPre.shape()[0];
        checkPatchBatch(batch);
        PatchingHooks hooks = new PatchingHooks(patchSrcOuts, currSrcOuts, batch, sharedBufferUsable(false));
        hooks.frozen = frozenScalesFromBlock(startBlock);
        Tensor out = model.forwardFromBlock(startBlock, residPre, attentionMask, cacheFor(batch), hooks, slice);
        // Without gradients the buffer is updated in place, as AutoCircuit's shared curr_src_outs is; with them, a
        // copy keeps the earlier buffer intact for the autograd graph that read it.
        currSrcOuts = hooks.currentOutputs(org.bytedeco.pytorch.GradMode.is_enabled() ? currSrcOuts.clone() : currSrcOuts);
        return out;
    }

    /**
     * {@link #forwardFromBlock} without the unembedding: the sliced final residual stream
     * {@code [batch, (seq,) dModel]}; {@link #unembed} turns it (or several stacked along the batch) into logits.
     */
    public Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask) {
        return residualFromBlock(startBlock, residPre, attentionMask, null);
    }

    /**
     * {@link #residualFromBlock} with per-example masks: {@code exampleMasks.get(module)}, shaped
     * {@code [batch, seq?, head?, nIn]}, replaces that module's mask (and mask function) for this pass only, so one
     * pass can try a different circuit in every batch row (ACDC's batched trials). Modules not in the map use
     * their own masks.
     */
    public Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask,
                                    Map<String, Tensor> exampleMasks) {
        ensureOpen();
        if (!supportsBlockPasses()) {
            throw new IllegalStateException("residualFromBlock needs a model with block passes, not " + model.getClass().getSimpleName());
        }
        if (patchSrcOuts == null) throw new IllegalStateException("residualFromBlock needs patch mode");
        long batch = residPre.shape()[0];
        checkPatchBatch(batch);
        boolean shared = sharedBufferUsable(false);
        PatchingHooks hooks = new PatchingHooks(patchSrcOuts, currSrcOuts, batch, shared);
        hooks.exampleMasks = exampleMasks;
        hooks.frozen = frozenScalesFromBlock(startBlock);
        Tensor out = model.residualFromBlock(startBlock, residPre, attentionMask, cacheFor(batch), hooks, slice,
            trimLastBlock(shared));
        // as in forwardFromBlock: in place without gradients, a copy with them
        currSrcOuts = hooks.currentOutputs(org.bytedeco.pytorch.GradMode.is_enabled() ? currSrcOuts.clone() : currSrcOuts);
        return out;
    }

    /** The logits of a final residual stream from {@link #residualFromBlock} (transformers only). */
    public Tensor unembed(Tensor resid) {
        ensureOpen();
        if (!supportsBlockPasses()) {
            throw new IllegalStateException("unembed needs a model with block passes, not " + model.getClass().getSimpleName());
        }
        return model.unembed(resid);
    }

    /**
     * An unpatched pass that returns every source's output, stacked in src_idx order:
     * {@code [nSrc, batch, seq, dModel]}, without gradients. {@code residPre}, if given (length nLayers of a
     * transformer), receives the residual stream before every block.
     */
    public Tensor srcOutputs(Tensor input, Tensor attentionMask, Tensor[] residPre) {
        return srcOutputs(input, attentionMask, residPre, null);
    }

    /**
     * {@link #srcOutputs(Tensor, Tensor, Tensor[])} that also keeps what the pass computed anyway: its output (with this
     * model's {@link OutputSlice}) goes to {@code output[0]} when {@code output} is non-null.
     */
    public Tensor srcOutputs(Tensor input, Tensor attentionMask, Tensor[] residPre, Tensor[] output) {
        return srcOutputs(input, attentionMask, residPre, output, null);
    }

    /**
     * {@link #srcOutputs(Tensor, Tensor, Tensor[], Tensor[])} written into {@code into} when it is a
     * {@link #sourceBuffer} of the input's shape (a caller running many batches reuses one instead of allocating and
     * page-faulting in a new one each time), else into a new buffer. Rows of sources the pass does not produce are
     * zero either way.
     */
    public Tensor srcOutputs(Tensor input, Tensor attentionMask, Tensor[] residPre, Tensor[] output, Tensor into) {
        ensureOpen();
        try (NoGradGuard g = new NoGradGuard()) {
            long[] in = input.shape();
            boolean reuse = into != null && java.util.Arrays.equals(into.shape(), new long[] {graph.nSrcs(), in[0], in[1], dModel});
            Tensor buffer = reuse ? into : sourceBuffer(in[0], in[1]);
            boolean[] written = new boolean[graph.srcModules().size()];
            Tensor[] scales = new Tensor[normScaleIndex.size()];   // this unpatched run's norm scales, kept for later passes
            HookPoints record = new HookPoints() {
                @Override
                public Tensor apply(String name, Tensor value) {
                    Integer m = srcModuleIndex.get(name);
                    if (m != null) {
                        writeSrc(buffer, graph.srcModules().get(m), value);
                        written[m] = true;
                    }
                    Integer s = normScaleIndex.get(name);
                    if (s != null) scales[s] = value;
                    return value;
                }

                @Override
                public boolean observes(String name) {
                    return srcModuleIndex.containsKey(name) || normScaleIndex.containsKey(name);
                }
            };
            KvCache cache = cacheFor(in[0]);
            Tensor out;
            boolean trimmed = model.supportsBlockPasses() && trimLastBlock(false);
            if (trimmed) {
                // outputsOnly: later passes read this block's sources at the last position only, as the output does
                out = model.unembed(model.forwardResidual(input, attentionMask, cache, record, slice, residPre, true));
            } else {
                out = model.forward(input, attentionMask, cache, record, slice, residPre);
            }
            if (output != null) output[0] = out;
            // a trimmed pass has the last block's scale at the last position only: not the whole run's
            if (scales.length > 0 && !trimmed) cleanScales.put(input, attentionMask, cache, scales);
            if (reuse) {
                for (int m = 0; m < written.length; m++) {
                    SrcModule sm = graph.srcModules().get(m);
                    if (!written[m]) buffer.narrow(0, sm.srcStart(), sm.count()).zero_();
                }
            }
            return buffer;
        }
    }

    // ---- norm scales frozen at the unpatched run (models with HookedModel.normScaleHooks(): Gemma-2) ----

    /** Whether the model computes norm scales that patched passes freeze ({@link HookedModel#normScaleHooks()}). */
    public boolean hasNormScales() {
        return !normScaleIndex.isEmpty();
    }

    /**
     * The norm scales of the unpatched run of {@code input} (over the KV cache of its batch size, if any), for
     * {@link PatchMode#freezeNormScales}; null for models without norm scales. Computed by one pass without gradients
     * unless a recent unpatched pass of this input ({@link #srcOutputs}, or an earlier call) left them; the returned
     * tensors are copies in the caller's scope.
     */
    public NormScales normScales(Tensor input, Tensor attentionMask) {
        ensureOpen();
        if (normScaleIndex.isEmpty()) return null;
        Tensor[] kept = cleanScales.get(input, attentionMask, cacheFor(input.shape()[0]));
        Tensor[] copies = new Tensor[kept.length];
        for (int i = 0; i < kept.length; i++) copies[i] = kept[i].clone();
        return new NormScales(normScaleIndex, copies);
    }

    /**
     * The norm scales a patched pass from the first block over {@code input} uses: those the patch mode was given,
     * else the unpatched run's of this input; null for models without norm scales, and where the pass is the unpatched
     * run itself ({@link #passIsUnpatched()}), whose own scales are those.
     */
    private NormScales frozenScalesFor(Tensor input, Tensor attentionMask, KvCache cache) {
        if (normScaleIndex.isEmpty()) return null;
        if (frozenScales != null) return frozenScales;
        if (passIsUnpatched()) return null;
        return new NormScales(normScaleIndex, cleanScales.get(input, attentionMask, cache));
    }

    /** As {@link #frozenScalesFor}, for a pass from a later block, which has no input to find them by. */
    private NormScales frozenScalesFromBlock(int startBlock) {
        if (normScaleIndex.isEmpty() || frozenScales != null) return frozenScales;
        if (passIsUnpatched()) return null;
        throw new IllegalStateException("a patched pass from block " + startBlock + " of a model with norm scales "
            + normScaleIndex.keySet() + " needs the unpatched run's: give them to the patch mode with "
            + "mode.freezeNormScales(model.normScales(input, attentionMask))");
    }

    /**
     * Whether every patched pass of the current patch mode computes the unpatched run (masks all 0:
     * {@link #patchModeAtZeroMasks}, or {@link #patchModeAtUniformMasks} at 0, without a mask function): its sources
     * are the unpatched run's, so are its norm scales.
     */
    private boolean passIsUnpatched() {
        return !currGradients && uniformMask == 0.0 && maskFn == MaskFn.NONE;
    }

    /**
     * The norm scales of the last few unpatched runs, by input (tokens, padding mask and KV cache), so that the passes
     * of one batch (run_circuits' circuits, ACDC's trials, the points of integrated gradients) compute them once.
     * Tokens are compared by value; the KV cache by identity.
     */
    private final class CleanScaleCache {
        private static final int ENTRIES = 8;
        private final java.util.ArrayDeque<Entry> entries = new java.util.ArrayDeque<>();   // most recent first

        private record Entry(Tensor tokens, Tensor mask, KvCache cache, Tensor[] scales) {
            void close() {
                tokens.close();
                if (mask != null) mask.close();
                for (Tensor t : scales) t.close();
            }
        }

        /** The unpatched run's scales of this input, computed (one pass without gradients) when none are kept. */
        Tensor[] get(Tensor input, Tensor attentionMask, KvCache cache) {
            for (Entry e : entries) {
                if (e.cache == cache && sameValues(e.tokens, input) && sameValues(e.mask, attentionMask)) return e.scales;
            }
            Tensor[] scales = new Tensor[normScaleIndex.size()];
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                HookPoints record = new HookPoints() {
                    @Override
                    public Tensor apply(String name, Tensor value) {
                        Integer i = normScaleIndex.get(name);
                        if (i != null) scales[i] = value;
                        return value;
                    }

                    @Override
                    public boolean observes(String name) {
                        return normScaleIndex.containsKey(name);
                    }
                };
                model.forwardResidual(input, attentionMask, cache, record, slice, null, false);
                return put(input, attentionMask, cache, scales);
            }
        }

        /** Keeps {@code scales} (of an unpatched, untrimmed run of this input) and returns the kept copies. */
        Tensor[] put(Tensor input, Tensor attentionMask, KvCache cache, Tensor[] scales) {
            for (int i = 0; i < scales.length; i++) {
                if (scales[i] == null) throw new IllegalStateException("the pass gave no " + List.copyOf(normScaleIndex.keySet()).get(i));
            }
            for (Entry e : entries) {
                if (e.cache == cache && sameValues(e.tokens, input) && sameValues(e.mask, attentionMask)) return e.scales;
            }
            Tensor[] kept = new Tensor[scales.length];
            for (int i = 0; i < kept.length; i++) kept[i] = OwnedTensors.keepAlive(scales[i].detach());
            Entry e = new Entry(OwnedTensors.keepAlive(input.clone()),
                attentionMask == null ? null : OwnedTensors.keepAlive(attentionMask.clone()), cache, kept);
            entries.addFirst(e);
            while (entries.size() > ENTRIES) entries.removeLast().close();
            return kept;
        }

        void clear() {
            entries.forEach(Entry::close);
            entries.clear();
        }

        private static boolean sameValues(Tensor kept, Tensor t) {
            if (kept == null || t == null) return kept == t;
            if (!java.util.Arrays.equals(kept.shape(), t.shape()) || kept.scalar_type().intern() != t.scalar_type().intern()) {
                return false;
            }
            try (PointerScope scope = new PointerScope()) {
                boolean sameDevice = kept.device().str().getString().equals(t.device().str().getString());
                return torch.equal(kept, sameDevice ? t : t.to(kept.device(), kept.scalar_type()));
            }
        }
    }

    /** A zero source buffer {@code [nSrc, batch, seq, dModel]} in the caller's scope (see {@link #srcOutputs}). */
    public Tensor sourceBuffer(long batch, long seq) {
        return torch.zeros(new long[] {graph.nSrcs(), batch, seq, dModel}, onModelDevice(model.dtype()));
    }

    /** A tensor the caller made for this model must be on its device: else an error naming both, before any pass. */
    private void checkOnModelDevice(String what, Tensor t) {
        org.autocircuit.kernels.Device d = model.device();
        if (!d.holds(t)) {
            throw new IllegalArgumentException("patch mode: " + what + " is on " + org.autocircuit.kernels.Device.torchName(t)
                + " but the model runs on " + d + "; make it with this model's srcOutputs/sourceBuffer or move it with .to(...)");
        }
    }

    /** Where the model runs: masks, source buffers and patch values live there. */
    public org.autocircuit.kernels.Device device() {
        return model.device();
    }

    /** Options for a new tensor of {@code dtype} on the model's device, in the caller's scope. */
    private org.bytedeco.pytorch.TensorOptions onModelDevice(torch.ScalarType dtype) {
        return model.device().options(dtype);
    }

    /**
     * An unpatched forward pass with caller-supplied hook callbacks (to capture activations, or to insert the
     * tensors whose gradients the exact EAP form takes). Uses the KV cache of the input's batch size, if any.
     *
     * @throws IllegalStateException in patch mode, where the patching hooks own the hook points
     */
    public Tensor forwardWithHooks(Tensor input, Tensor attentionMask, HookPoints hooks) {
        ensureOpen();
        if (patchSrcOuts != null) throw new IllegalStateException("forwardWithHooks runs the unpatched model; leave patch mode first");
        return run(input, attentionMask, cacheFor(input.shape()[0]), Objects.requireNonNull(hooks, "hooks"), false, null,
            false);
    }

    private Tensor run(Tensor input, Tensor attentionMask, KvCache cache, HookPoints hooks, boolean residualOnly,
                       Tensor[] residPre, boolean lastPositionOnly) {
        if (residualOnly) return model.forwardResidual(input, attentionMask, cache, hooks, slice, residPre, lastPositionOnly);
        return model.forward(input, attentionMask, cache, hooks, slice, residPre);
    }

    private KvCache cacheFor(long batch) {
        if (kvCaches.isEmpty()) return null;
        KvCache c = kvCaches.get(batch);
        if (c == null) {
            throw new IllegalArgumentException("no KV cache for batch size " + batch + "; caches exist for " + kvCaches.keySet());
        }
        return c;
    }

    /**
     * While the returned scope is open, {@link #forwardResidual}, {@link #residualFromBlock} and {@link #srcOutputs}
     * passes without gradients may compute only what their (last-position) output needs in the last block; the rows
     * of that block's sources in the current-output and source buffers then hold the last position only. For
     * run_circuits and ACDC's trials, which read nothing else (per-example masks included: they carry no positions
     * on the graphs this applies to). Closing restores the previous setting.
     */
    public OutputsOnly outputsOnly() {
        boolean previous = outputsOnly;
        outputsOnly = true;
        return () -> outputsOnly = previous;
    }

    /**
     * Suspends {@link #outputsOnly()} until closed: {@link #srcOutputs} passes then compute every position of the last
     * block too. For ablation values read at positions the output does not reach (BATCH_ALL_TOK_MEAN averages each
     * source over every position, so a trimmed last block would average its last position with zeros).
     */
    OutputsOnly everyPosition() {
        boolean previous = outputsOnly;
        outputsOnly = false;
        return () -> outputsOnly = previous;
    }

    /** The scope of {@link #outputsOnly()}. */
    public interface OutputsOnly extends AutoCloseable {
        @Override
        void close();
    }

    /** Whether a residual-only pass (shared-buffer or plain) may trim the last block: see {@link #outputsOnly()}. */
    private boolean trimLastBlock(boolean shared) {
        return outputsOnly && (shared || patchSrcOuts == null) && slice == OutputSlice.LAST_SEQ
            && graph.seqLen().isEmpty() && !org.bytedeco.pytorch.GradMode.is_enabled();
    }

    /** How many destination inputs patched passes have given the uniform-mask gradient term (tests). */
    long uniformMaskTermCount() {
        return uniformMaskTermCount;
    }

    /** How many Q/K/V destinations patched passes under autograd have given one input for all heads (tests). */
    long sharedHeadInputCount() {
        return sharedHeadInputCount;
    }

    /**
     * How many destination inputs patched passes under autograd have formed from the running sum of the differences
     * instead of the kernels (tests; see {@link #patchModeAtUniformMasks}).
     */
    long rowSumInputCount() {
        return rowSumInputCount;
    }

    /** How many Q/K/V destination groups patched passes have given their inputs in compact form (tests). */
    long compactHeadInputCount() {
        return compactHeadInputCount;
    }

    /**
     * Whether a pass may write source outputs (detached) in place into {@link #currSrcOuts} and let destinations
     * read views of it. Without gradients, always. With them, only when no gradient flows through the current
     * outputs ({@link #patchModeAtZeroMasks}) and the pass starts at the first block ({@code fromFirstBlock}): then
     * the buffer is a constant to autograd, whose graph keeps no view of it (the native kernel keeps rows it must
     * find unchanged at backward under a checksum, the reference one saves only {@code patch − curr}). Where
     * gradients reach the current outputs, in-place writes into one buffer would make backward clone and zero-fill
     * the whole buffer's gradient once per write, so those passes concatenate per-module outputs instead.
     */
    private boolean sharedBufferUsable(boolean fromFirstBlock) {
        boolean grad = org.bytedeco.pytorch.GradMode.is_enabled();
        return (!grad || (fromFirstBlock && !currGradients)) && currSrcOuts != null
            && java.util.Arrays.equals(currSrcOuts.shape(), patchSrcOuts.shape());
    }

    private void checkPatchBatch(long batch) {
        if (maskBatchSize > 0 && batch != maskBatchSize) {
            throw new IllegalArgumentException("input batch size " + batch + " differs from the per-example mask batch size "
                + maskBatchSize + " (maskBatchSize)");
        }
        long patchBatch = patchSrcOuts.shape()[1];
        if (patchBatch != batch) {
            throw new IllegalArgumentException("input batch size " + batch + " differs from the patch values' batch size "
                + patchBatch + " (dataset-mean ablations carry the loader's batch size)");
        }
    }

    /** Writes a source module's output into the buffer rows [srcStart, srcStart+count). */
    private static void writeSrc(Tensor buffer, SrcModule sm, Tensor out) {
        // a pass that computed only the last positions of a block (outputsOnly) writes those
        long positions = out.size(1), bufferPositions = buffer.size(2);
        Tensor rows = buffer.narrow(0, sm.srcStart(), sm.count());
        if (positions != bufferPositions) rows = rows.narrow(2, bufferPositions - positions, positions);
        if (sm.headed()) {
            Tensor heads = out.permute(2, 0, 1, 3);                       // [nHeads, batch, seq, dModel]
            if (heads.shape()[0] != sm.count()) {
                throw new IllegalStateException(sm.moduleName() + " produced " + heads.shape()[0] + " heads, graph expects " + sm.count());
            }
            rows.copy_(heads);
        } else {
            rows.select(0, 0).copy_(out);
        }
    }

    /**
     * The hook callbacks of one patched forward pass.
     *
     * <p>Each source module's output is kept as its own tensor ({@code [count, batch, seq, dModel]}) rather than
     * copied into rows of one shared buffer: under autograd, in-place writes into slices of a buffer make every
     * backward pass clone and zero-fill the whole {@code [nSrc, batch, seq, dModel]} gradient once per write and per
     * read, which cost more than the patching itself on GPT-2-sized graphs. A destination concatenates the outputs
     * of the modules it reads (once for Q, K and V together).
     */
    private final class PatchingHooks implements HookPoints {
        private final Tensor patch;
        private final Tensor earlier;                             // buffer for sources this pass does not produce, or null
        private final long batch;
        private final Tensor[] produced = new Tensor[graph.srcModules().size()];   // per src module: [count, batch, seq, dModel]
        private final Map<String, Tensor> fused = new HashMap<>();   // K/V results computed together with Q
        private final Map<String, HeadInputs> fusedHeadInputs = new HashMap<>();   // the same, in compact form
        private final Map<String, SharedHeads> awaitingProjection = new HashMap<>();  // shared inputs handed out
        private final boolean shared;                                 // sources written into `earlier`, read as views
        private RunningDeltaSum running;   // shared passes: Σ (patch − curr) over the sources read so far
        // patchModeAtUniformMasks with grad: per source module, its output summed over its rows, in the autograd graph
        private final Tensor[] moduleSums;
        private final Tensor[] moduleRows;
        private Tensor prefixSum;          // Σ moduleSums[0, prefixModules), in the autograd graph
        private int prefixModules;
        private Map<String, Tensor> exampleMasks;                     // per-example overrides, or null
        private NormScales frozen;                                    // the unpatched run's norm scales, or null

        /**
         * @param earlier buffer for sources this pass does not produce, or null
         * @param shared  {@code earlier} is also where this pass writes the sources it produces, and destinations
         *                read views of it (no gradients)
         */
        PatchingHooks(Tensor patch, Tensor earlier, long batch, boolean shared) {
            if (shared && earlier == null) throw new IllegalArgumentException("a shared pass needs the buffer");
            this.patch = patch;
            this.earlier = earlier;
            this.batch = batch;
            this.shared = shared;
            this.moduleSums = uniformCurrGradient() ? new Tensor[graph.srcModules().size()] : null;
            this.moduleRows = moduleSums == null ? null : new Tensor[moduleSums.length];
        }

        /**
         * Whether this pass carries the current outputs' gradient through {@link #uniformMaskTerm} (see
         * {@link #patchModeAtUniformMasks}): a shared pass under autograd with a nonzero uniform mask.
         */
        private boolean uniformCurrGradient() {
            return shared && !currGradients && uniformMask != 0.0 && org.bytedeco.pytorch.GradMode.is_enabled();
        }

        /**
         * {@code −alpha · (T − T.detach())} for the sources {@code [start, start+n)}, T their outputs' sum
         * {@code [batch, seq, dModel]}: zero in value, and the gradient {@code −alpha · g} into every one of them for a
         * gradient g on the destination input it is added to.
         */
        private Tensor uniformMaskTerm(int start, int n) {
            List<SrcModule> modules = graph.srcModules();
            Tensor total = null;
            if (start == 0) {
                // destinations of a factorized graph read growing prefixes: extend one running sum
                int end = 0;
                while (end < modules.size() && modules.get(end).srcEnd() <= n) end++;
                if (end > 0 && modules.get(end - 1).srcEnd() == n && end >= prefixModules) {
                    for (; prefixModules < end; prefixModules++) {
                        Tensor t = moduleSum(prefixModules);
                        prefixSum = prefixSum == null ? t : prefixSum.add(t);
                    }
                    total = prefixSum;
                }
            }
            if (total == null) {
                for (int m = 0; m < modules.size(); m++) {
                    SrcModule sm = modules.get(m);
                    int from = Math.max(start, sm.srcStart()), to = Math.min(start + n, sm.srcEnd());
                    if (from >= to) continue;
                    Tensor t = to - from == sm.count() ? moduleSum(m) : rowsOf(m).narrow(0, from - sm.srcStart(), to - from).sum(0);
                    total = total == null ? t : total.add(t);
                }
            }
            return total.sub(total.detach()).mul(new Scalar(-uniformMask));
        }

        /** Source module m's output summed over its rows, [batch, seq, dModel]. */
        private Tensor moduleSum(int m) {
            Tensor t = moduleSums[m];
            if (t == null) {
                throw new IllegalStateException("destination reads source module " + graph.srcModules().get(m).moduleName()
                    + " before this pass produced it");
            }
            return t;
        }

        /** Source module m's output as rows [count, batch, seq, dModel], in the autograd graph. */
        private Tensor rowsOf(int m) {
            Tensor t = moduleRows[m];
            if (t == null) moduleSum(m);   // throws
            return t;
        }

        @Override
        public Tensor apply(String name, Tensor value) {
            if (frozen != null && frozen.covers(name)) return frozen.forHook(name, value);
            Tensor x = value;
            DestModule dm = destByHook.get(name);
            if (dm != null) x = patchDestination(dm, x);
            Integer srcModule = srcModuleIndex.get(name);
            if (srcModule != null) {
                SrcModule sm = graph.srcModules().get(srcModule);
                if (shared) {
                    try (NoGradGuard g = new NoGradGuard()) {
                        writeSrc(earlier, sm, x.detach());
                    }
                    produced[srcModule] = earlier.narrow(0, sm.srcStart(), sm.count());
                    if (moduleSums != null) {
                        moduleRows[srcModule] = srcRows(sm, x);
                        moduleSums[srcModule] = sm.headed() ? x.sum(2) : x;
                    }
                } else {
                    produced[srcModule] = srcRows(sm, x);
                }
            }
            return x;
        }

        /** The current outputs of sources {@code [start, start+n)}: {@code [n, batch, seq, dModel]}. */
        private Tensor current(int start, int n) {
            if (shared) return earlier.narrow(0, start, n);   // produced rows were written there, the rest are earlier
            List<Tensor> parts = new ArrayList<>();
            List<SrcModule> modules = graph.srcModules();
            for (int m = 0; m < modules.size(); m++) {
                SrcModule sm = modules.get(m);
                int from = Math.max(start, sm.srcStart()), to = Math.min(start + n, sm.srcEnd());
                if (from >= to) continue;
                Tensor rows = produced[m];
                if (rows == null) {
                    if (earlier == null) {
                        throw new IllegalStateException("destination reads source module " + sm.moduleName()
                            + " before this pass produced it");
                    }
                    parts.add(earlier.narrow(0, from, to - from));
                } else {
                    parts.add(to - from == sm.count() ? rows : rows.narrow(0, from - sm.srcStart(), to - from));
                }
            }
            return parts.size() == 1 ? parts.get(0) : torch.cat(new TensorVector(parts.toArray(new Tensor[0])), 0);
        }

        /**
         * Writes this pass's source outputs, detached, into {@code buffer} (rows of sources the pass did not
         * produce keep their values) and returns it.
         */
        Tensor currentOutputs(Tensor buffer) {
            if (shared && buffer == earlier) return buffer;   // already written in place
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                List<SrcModule> modules = graph.srcModules();
                for (int m = 0; m < modules.size(); m++) {
                    if (produced[m] != null) {
                        buffer.narrow(0, modules.get(m).srcStart(), modules.get(m).count()).copy_(produced[m].detach());
                    }
                }
            }
            return buffer;
        }

        private Tensor patchDestination(DestModule dm, Tensor input) {
            Tensor ready = fused.remove(dm.moduleName());
            if (ready != null) return ready;
            List<DestModule> group = qkvGroup(dm, input);
            Tensor[] applied = new Tensor[group.size()];
            for (int i = 0; i < applied.length; i++) applied[i] = appliedMask(group.get(i));
            boolean perExample = hasExampleMask(dm) || maskFn.addsBatchDim() || maskBatchSize > 0;
            Tensor[] out = patched(dm, input, applied, new MaskLayout(perExample, graph.seqLen().isPresent(), dm.headed()));
            for (int i = 1; i < out.length; i++) fused.put(group.get(i).moduleName(), out[i]);
            return out[0];
        }

        /**
         * {@code dm} and, for a Q input, the K and V inputs of its block: they read the same sources, so one call
         * patches them. Not when the Q input has fewer positions than the sources ({@code input}: a last block that
         * computes only the last position's query, while keys and values need every position).
         */
        private List<DestModule> qkvGroup(DestModule dm, Tensor input) {
            List<DestModule> group = new ArrayList<>(3);
            group.add(dm);
            if (dm.moduleName().endsWith(".hook_q_input") && input.size(1) == patch.size(2)) {
                String prefix = dm.moduleName().substring(0, dm.moduleName().length() - "hook_q_input".length());
                for (String s : new String[] {"hook_k_input", "hook_v_input"}) {
                    DestModule other = destByHook.get(prefix + s);
                    // (not the K/V inputs of a grouped layout, whose masks have fewer rows than Q's)
                    if (other != null && other.nIn() == dm.nIn() && other.inSrcStart() == dm.inSrcStart()
                        && other.nodes().size() == dm.nodes().size()
                        && hasExampleMask(other) == hasExampleMask(dm)) group.add(other);
                }
            }
            return group;
        }

        /** One kernel call: the inputs of destinations that read {@code dm}'s sources, patched with {@code applied}. */
        private Tensor[] patched(DestModule dm, Tensor input, Tensor[] applied, MaskLayout layout) {
            Tensor curr = current(dm.inSrcStart(), dm.nIn());
            if (!currGradients) curr = curr.detach();
            Tensor patchIn = patch.narrow(0, dm.inSrcStart(), dm.nIn());
            long positions = input.size(1), all = patchIn.size(2);
            boolean lastPositions = positions != all;   // a trimmed last block (outputsOnly): its last positions
            if (lastPositions) {
                patchIn = patchIn.narrow(2, all - positions, positions);
                curr = curr.narrow(2, all - positions, positions);
            }
            // The kernels read [nIn, batch·seq·dModel] blocks. Buffers given by a caller may be views that are not
            // (a narrowed batch, say): copy those rows rather than hand the native kernels what they must reject.
            if (!patchIn.is_contiguous()) patchIn = patchIn.contiguous();
            if (!curr.is_contiguous()) curr = curr.contiguous();
            if (!input.is_contiguous()) input = input.contiguous();
            // A shared pass reads source prefixes of one buffer in increasing order, so one running sum of the
            // differences serves all its destinations (used by the native kernels for mostly-1 binary masks).
            if (moduleSums != null) {
                if (lastPositions) throw new IllegalStateException("a trimmed last block under autograd");
                input = input.add(uniformMaskTerm(dm.inSrcStart(), dm.nIn()));
                uniformMaskTermCount++;
            }
            if (rowFromSum(dm, applied, lastPositions)) return new Tensor[] {rowInputFromSum(dm, input, applied[0])};
            RunningDeltaSum sum = null;
            if (shared && dm.inSrcStart() == 0 && !lastPositions) {
                if (running == null) running = RunningDeltaSum.startingAt(input);
                sum = running;
            }
            return kernels.edgePatch(input, applied, patchIn, curr, layout, sum);
        }

        /**
         * Whether {@code dm}'s input is formed from the running difference sum ({@link #rowInputFromSum}): a pass of
         * {@link #patchModeAtZeroMasks} or {@link #patchModeAtUniformMasks} with every mask verified to hold the
         * mode's value, applied as set, under autograd, float32; one mask row (an MLP or final-residual destination, or
         * the shared input of a block's Q/K/V heads) reading a prefix of the sources at least as long as the last one.
         */
        private boolean rowFromSum(DestModule dm, Tensor[] applied, boolean lastPositions) {
            return rowInputsFromSums && shared && !lastPositions && exampleMasks == null && applied.length == 1
                && applied[0].dim() == 1 && dm.inSrcStart() == 0 && (running == null || dm.nIn() >= running.rows())
                && org.bytedeco.pytorch.GradMode.is_enabled();
        }

        /**
         * Every mask holds the mode's value a, so the patched input {@code x + Σ_i a · (patch_i − curr_i)} over
         * sources {@code [0, n)} is {@code x + a · D_n} with {@code D_n} the pass's running sum of the differences
         * ({@link RunningDeltaSum}, the one the kernels use for binary masks), which each pass extends as its
         * destinations read longer prefixes: every source's difference is read once per pass instead of once per
         * destination. The differences are constants to autograd in these modes (the current
         * outputs' gradient comes from {@link #uniformMaskTerm}, already in {@code input}), so the mask's gradient
         * {@code Σ g · (patch_i − curr_i)} needs only the gradient g at the result: it is retained and the products
         * come after the backward pass, one matrix product for all such destinations ({@link PatchMode#backward}).
         */
        private Tensor rowInputFromSum(DestModule dm, Tensor input, Tensor mask) {
            Tensor out;
            if (uniformMask == 0.0) {
                out = input.clone();                       // a node of its own, whose gradient is this input's alone
            } else {
                if (running == null) running = RunningDeltaSum.startingAt(input);
                running.advanceTo(dm.nIn(), patch, earlier);
                out = input.add(running.sum(), new Scalar(uniformMask));
            }
            if (mask.requires_grad()) {
                // where nothing before needs a gradient (the first block at mask 0), a leaf, whose gradient autograd keeps
                if (out.requires_grad()) {
                    out.retain_grad();
                } else {
                    out = out.detach().requires_grad_(true);
                }
                pendingRows.add(new RowDestination(dm, out));
            }
            rowSumInputCount++;
            return out;
        }

        @Override
        public boolean observes(String name) {
            return destByHook.containsKey(name) || srcModuleIndex.containsKey(name);
        }

        @Override
        public HeadInputs headInputs(String name, Tensor value) {
            HeadInputs ready = fusedHeadInputs.remove(name);
            if (ready != null) return ready;
            DestModule dm = destByHook.get(name);
            if (dm != null && !fused.containsKey(name) && sharedHeadInputsUsable(dm, value)) return sharedHeadInputs(dm, value);
            if (dm == null || fused.containsKey(name) || !compactHeadInputsUsable(dm, value)) {
                return HeadInputs.of(apply(name, value));
            }
            List<DestModule> group = qkvGroup(dm, value);
            HeadInputs[] plans = compactHeadInputs(group, value);
            if (plans == null) return HeadInputs.of(apply(name, value));
            for (int i = 1; i < plans.length; i++) fusedHeadInputs.put(group.get(i).moduleName(), plans[i]);
            compactHeadInputCount++;
            return plans[0];
        }

        /**
         * Whether this pass gives a Q/K/V destination one input for all its heads under autograd (the mode allows it:
         * {@link #sharedHeadInputsSupported()} and every mask at one value): a shared pass, a destination with one
         * mask row per head, from the shared residual.
         */
        private boolean sharedHeadInputsUsable(DestModule dm, Tensor value) {
            return sharedHeadInputs && shared && org.bytedeco.pytorch.GradMode.is_enabled() && exampleMasks == null
                && dm.headed() && dm.maskShape().length == 2 && value.dim() == 3 && value.size(1) == patch.size(2);
        }

        /**
         * Every mask holds one value a, so every head of {@code dm} (and of the K and V inputs grouped with a Q input)
         * reads the same input {@code x + a · Σ_i (patch_i − curr_i)}: one patched row, computed once with a row of the
         * mask (no mask gradient through it), and handed to the model as the shared input of every head, so that the
         * model projects it as the plain model does (one norm, one product). The mask gradients that the per-head path
         * would give come from {@link PatchMode#backward}, from the projections' retained gradients.
         */
        private HeadInputs sharedHeadInputs(DestModule dm, Tensor value) {
            List<DestModule> group = qkvGroup(dm, value);
            Tensor row = masks.get(dm.moduleName()).select(0, 0).detach();            // [nIn], every value a
            Tensor input = uniformMask == 0.0 && moduleSums == null ? value
                : patched(dm, value, new Tensor[] {row}, new MaskLayout(false, false, false))[0];
            // where nothing before needs a gradient (the first block at mask 0), a leaf, so that the projection has one
            if (!input.requires_grad()) input = input.detach().requires_grad_(true);
            HeadInputs in = HeadInputs.shared(input);
            for (int i = 0; i < group.size(); i++) {
                SharedHeads h = new SharedHeads(group.get(i), input);
                awaitingProjection.put(group.get(i).moduleName(), h);
                if (i > 0) fusedHeadInputs.put(group.get(i).moduleName(), in);
            }
            sharedHeadInputCount += group.size();
            return in;
        }

        /** Every shared input handed out reached its projection (else its mask gradient would be missing). */
        void checkProjectionsSeen() {
            if (!awaitingProjection.isEmpty()) {
                pendingHeads.clear();
                pendingRows.clear();
                throw new IllegalStateException("the model never projected the shared inputs of "
                    + awaitingProjection.keySet() + "; their mask gradients cannot be computed");
            }
        }

        @Override
        public void sharedHeadProjection(String name, Tensor projection) {
            SharedHeads h = awaitingProjection.remove(name);
            if (h == null) return;
            projection.retain_grad();
            h.projection = projection;
            pendingHeads.add(h);
        }

        /**
         * Whether this pass may give a Q/K/V destination its inputs in the compact {@link HeadInputs} form: without
         * gradients (with them, every mask row must stay in the autograd graph), with the masks as set (no mask
         * function, dropout, per-example or per-position rows), and from the shared residual.
         */
        private boolean compactHeadInputsUsable(DestModule dm, Tensor value) {
            return dm.headed() && value.dim() == 3 && !org.bytedeco.pytorch.GradMode.is_enabled()
                && maskFn == MaskFn.NONE && !(training && dropoutP > 0) && exampleMasks == null && maskBatchSize == 0
                && graph.seqLen().isEmpty();
        }

        /**
         * The Q/K/V inputs of {@code group} in compact form: the most common mask row among all its heads gives the
         * shared input (the residual itself when that row is all 0), and only the heads whose row differs in Q, K or
         * V get their own, in one kernel call. Null when too few heads share for that to pay.
         */
        private HeadInputs[] compactHeadInputs(List<DestModule> group, Tensor input) {
            int nHeads = (int) group.get(0).maskShape()[0], nIn = group.get(0).nIn();
            float[][] rows = new float[group.size()][];
            for (int i = 0; i < rows.length; i++) {
                rows[i] = org.autocircuit.util.HostTensor.of(masks.get(group.get(i).moduleName())).floats();
            }
            // the most common row, as (destination, head) of one occurrence
            int bestCount = 0, bestDest = 0, bestHead = 0;
            for (int i = 0; i < rows.length; i++) {
                for (int h = 0; h < nHeads; h++) {
                    int count = 0;
                    for (int j = 0; j < rows.length; j++) {
                        for (int g = 0; g < nHeads; g++) if (sameRow(rows[i], h, rows[j], g, nIn)) count++;
                    }
                    if (count > bestCount) {
                        bestCount = count;
                        bestDest = i;
                        bestHead = h;
                    }
                }
            }
            long[] ownHeads = new long[nHeads];
            int p = 0;
            for (int h = 0; h < nHeads; h++) {
                for (float[] r : rows) {
                    if (!sameRow(r, h, rows[bestDest], bestHead, nIn)) {
                        ownHeads[p++] = h;
                        break;
                    }
                }
            }
            if (p > maxOwnHeads(nHeads)) return null;
            boolean commonIsZero = true;
            for (int k = 0; k < nIn && commonIsZero; k++) commonIsZero = rows[bestDest][bestHead * nIn + k] == 0f;
            DestModule dm = group.get(0);
            Tensor shared = commonIsZero ? input
                : patched(dm, input, new Tensor[] {masks.get(group.get(bestDest).moduleName()).select(0, bestHead)},
                    new MaskLayout(false, false, false))[0];
            HeadInputs[] plans = new HeadInputs[group.size()];
            if (p == 0) {
                java.util.Arrays.fill(plans, HeadInputs.shared(shared));
                return plans;
            }
            Tensor heads = AbstractTensor.create(java.util.Arrays.copyOf(ownHeads, p), p);
            Tensor someMask = masks.get(dm.moduleName());
            if (!someMask.is_cpu()) heads = heads.to(someMask.device(), torch.ScalarType.Long);
            Tensor[] ownMasks = new Tensor[group.size()];
            for (int i = 0; i < ownMasks.length; i++) ownMasks[i] = masks.get(group.get(i).moduleName()).index_select(0, heads);
            Tensor[] own = patched(dm, input, ownMasks, new MaskLayout(false, false, true));
            for (int i = 0; i < plans.length; i++) plans[i] = new HeadInputs(shared, heads, own[i], nHeads);
            return plans;
        }

        /**
         * Past half the heads, projecting the shared input for every head and then the own ones again costs more than
         * the per-head path saves (measured on GPT-2 small, where either way was within noise between a quarter and
         * all of the heads).
         */
        private static int maxOwnHeads(int nHeads) {
            return nHeads / 2;
        }

        private static boolean sameRow(float[] a, int rowA, float[] b, int rowB, int n) {
            return java.util.Arrays.equals(a, rowA * n, rowA * n + n, b, rowB * n, rowB * n + n);
        }

        private boolean hasExampleMask(DestModule dm) {
            return exampleMasks != null && exampleMasks.containsKey(dm.moduleName());
        }

        private Tensor appliedMask(DestModule dm) {
            if (hasExampleMask(dm)) return exampleMasks.get(dm.moduleName());
            Tensor m = maskFn.apply(masks.get(dm.moduleName()), sampleWhole > 0 ? sampleWhole : batch, maskBatchSize > 0);
            if (training && dropoutP > 0) m = torch.dropout(m, dropoutP, true);
            // a part of a batch: the whole batch's samples were drawn (the same random numbers as one process), this
            // pass's prompts take their rows
            if (sampleWhole > 0 && maskFn.addsBatchDim()) m = m.narrow(0, sampleStart, batch);
            return m;
        }
    }

    /** A source module's output as rows {@code [count, batch, seq, dModel]} (a view where possible). */
    private static Tensor srcRows(SrcModule sm, Tensor out) {
        if (!sm.headed()) return out.unsqueeze(0);
        Tensor heads = out.permute(2, 0, 1, 3);                           // [nHeads, batch, seq, dModel]
        if (heads.shape()[0] != sm.count()) {
            throw new IllegalStateException(sm.moduleName() + " produced " + heads.shape()[0] + " heads, graph expects " + sm.count());
        }
        return heads;
    }

    // ---- masks ----

    /** The live mask of a destination module (an alias, not a copy): {@code [seq?][head?][nIn]}. */
    public Tensor mask(String destModule) {
        ensureOpen();
        Tensor m = masks.get(destModule);
        if (m == null) throw new IllegalArgumentException("no destination module '" + destModule + "'; valid: " + masks.keySet());
        return m;
    }

    /** Destination module names in the graph's canonical order. */
    public List<String> maskNames() {
        return List.copyOf(masks.keySet());
    }

    /** Fills every mask with {@code value}. Modifies the model's state. */
    public void setAllMasks(double value) {
        ensureOpen();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (Tensor m : masks.values()) m.fill_(new Scalar(value));
        }
    }

    /** Sets every mask from {@code values} (of this model's graph). Modifies the model's state. */
    public void setMasks(PruneScores values) {
        ensureOpen();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : masks.entrySet()) {
                // the graph's shape: under maskBatchSize the values are copied to every example
                // copy_ crosses devices: the host values go straight into the masks on the model's device
                Tensor src = AbstractTensor.create(values.module(e.getKey()), destByHook.get(e.getKey()).maskShape());
                e.getValue().copy_(src);
            }
        }
    }

    /** A host copy of the current masks, as PruneScores. */
    public PruneScores currentMasks() {
        ensureOpen();
        if (maskBatchSize > 0) {
            throw new IllegalStateException("currentMasks: per-example masks are active (maskBatchSize "
                + maskBatchSize + "); read masks() per example, or close that scope first");
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : masks.entrySet()) {
            out.put(e.getKey(), org.autocircuit.util.HostTensor.of(e.getValue()).floats());
        }
        return PruneScores.of(graph, out);
    }

    /**
     * The gradients accumulated on the masks (zeros where none), as PruneScores. Under {@link #maskBatchSize} they are
     * summed over the examples, which is the gradient of one shared mask; {@link #exampleMaskGradients} gives them
     * per example.
     */
    public PruneScores maskGradients() {
        ensureOpen();
        Map<String, float[]> out = new LinkedHashMap<>();
        try (PointerScope s = new PointerScope()) {
            for (Map.Entry<String, Tensor> e : masks.entrySet()) {
                Tensor grad = e.getValue().grad();
                if (grad.defined() && maskBatchSize > 0) grad = grad.sum(0);
                out.put(e.getKey(), grad.defined()
                    ? org.autocircuit.util.HostTensor.of(grad).floats()
                    : new float[maskSize(e.getKey())]);
            }
        }
        return PruneScores.of(graph, out);
    }

    /** Elements in one (unbatched) mask of a destination module. */
    private int maskSize(String destModule) {
        long n = 1;
        for (long d : destByHook.get(destModule).maskShape()) n *= d;
        return (int) n;
    }

    /**
     * The mask gradients of each example under {@link #maskBatchSize}: element {@code b} is what example {@code b}
     * of the batch contributed (zeros where no gradient was accumulated).
     *
     * @throws IllegalStateException outside a {@link #maskBatchSize} scope
     */
    public List<PruneScores> exampleMaskGradients() {
        ensureOpen();
        if (maskBatchSize == 0) throw new IllegalStateException("exampleMaskGradients needs maskBatchSize to be active");
        List<Map<String, float[]>> perExample = new ArrayList<>();
        for (int b = 0; b < maskBatchSize; b++) perExample.add(new LinkedHashMap<>());
        try (PointerScope s = new PointerScope()) {
            for (Map.Entry<String, Tensor> e : masks.entrySet()) {
                Tensor grad = e.getValue().grad();
                float[] all = grad.defined() ? org.autocircuit.util.HostTensor.of(grad).floats()
                    : new float[(int) e.getValue().numel()];
                int per = all.length / (int) maskBatchSize;
                for (int b = 0; b < maskBatchSize; b++) {
                    perExample.get(b).put(e.getKey(), java.util.Arrays.copyOfRange(all, b * per, (b + 1) * per));
                }
            }
        }
        List<PruneScores> out = new ArrayList<>();
        for (Map<String, float[]> m : perExample) out.add(PruneScores.of(graph, m));
        return out;
    }

    /** The live masks as a map (aliases), for optimisers. */
    public Map<String, Tensor> masks() {
        ensureOpen();
        return Collections.unmodifiableMap(masks);
    }

    // ---- state scopes ----

    /**
     * Enters patch mode with these ablation values. Modifies the model's state until the returned scope closes,
     * which restores the previous patch state (so scopes nest). Masks are not restored (quirk 2 of docs/quirks.md).
     *
     * @param patchSrcOuts {@code [nSrc, batch, seq, dModel]} the value each source's edges take when ablated
     */
    public PatchMode patchMode(Tensor patchSrcOuts) {
        return patchMode(patchSrcOuts, (Tensor) null);
    }

    /**
     * Patch mode with a pre-filled current-output buffer, read by {@link #forwardFromBlock} for the sources
     * before its start block (ACDC passes the clean source outputs).
     */
    public PatchMode patchMode(Tensor patchSrcOuts, Tensor currSrcOuts) {
        ensureOpen();
        long[] s = patchSrcOuts.shape();
        if (s.length != 4 || s[0] != graph.nSrcs() || s[3] != dModel) {
            throw new IllegalArgumentException("patchSrcOuts must be [" + graph.nSrcs() + ", batch, seq, " + dModel
                + "], got " + java.util.Arrays.toString(s));
        }
        checkOnModelDevice("patchSrcOuts", patchSrcOuts);
        if (currSrcOuts != null) checkOnModelDevice("currSrcOuts", currSrcOuts);
        if (currSrcOuts != null && !java.util.Arrays.equals(currSrcOuts.shape(), s)) {
            throw new IllegalArgumentException("currSrcOuts " + java.util.Arrays.toString(currSrcOuts.shape())
                + " must have the shape of patchSrcOuts " + java.util.Arrays.toString(s));
        }
        PatchMode mode = new PatchMode(this.patchSrcOuts, this.currSrcOuts, this.currGradients, this.uniformMask,
            this.sharedHeadInputs, this.rowInputsFromSums, this.frozenScales);
        this.frozenScales = null;
        this.currGradients = true;
        this.uniformMask = 0.0;
        this.sharedHeadInputs = false;
        this.rowInputsFromSums = false;
        this.patchSrcOuts = patchSrcOuts;
        this.currSrcOuts = currSrcOuts != null ? currSrcOuts : torch.zeros_like(patchSrcOuts);
        return mode;
    }

    /**
     * Patch mode for passes in which every mask is 0 (Edge Attribution Patching): the gradient that reaches the
     * current source outputs through {@code mask · (patch − curr)} is then exactly 0, so autograd is told to treat the
     * differences as constants, which saves one backward product per destination. Gradients with respect to the
     * masks are unchanged. The caller must keep every mask at 0 while the scope is open. Under a mask function
     * other than {@link MaskFn#NONE} the applied masks are not 0, and this is plain {@link #patchMode(Tensor)}. Where
     * every mask is verified 0 the Q/K/V heads of a block share one input under autograd (see
     * {@link #patchModeAtUniformMasks}), and in a float32 model the one-row destinations (MLP inputs, the final
     * residual) read their input as it is and get their mask gradients after the backward pass: run the backward pass
     * through {@link PatchMode#backward}.
     */
    public PatchMode patchModeAtZeroMasks(Tensor patchSrcOuts) {
        return patchModeAtZeroMasks(patchSrcOuts, null);
    }

    /**
     * {@link #patchModeAtZeroMasks(Tensor)} with {@code currBuffer} ({@code patchSrcOuts}' shape, or null for a new
     * zeroed one) as the current-output buffer: passes from the first block write every source into it before any
     * destination reads it, so a caller running many such passes on one batch may hand the same buffer to each mode
     * instead of zeroing a new one each time. The buffer is the caller's scratch: after {@link PatchMode#backward} it
     * holds {@code curr − patch} (the deferred mask gradients form their differences in it rather than in a new
     * buffer of its size).
     */
    public PatchMode patchModeAtZeroMasks(Tensor patchSrcOuts, Tensor currBuffer) {
        PatchMode mode = patchMode(patchSrcOuts, currBuffer);
        mode.currScratch = currBuffer != null;
        // a mask function maps 0 elsewhere (sigmoid(0) = 0.5, hard-concrete samples): keep the full gradient then
        currGradients = maskFn != MaskFn.NONE;
        boolean allZero = appliesMasksAsSet() && masksAllEqual(0.0);
        sharedHeadInputs = allZero && sharedHeadInputsSupported();
        rowInputsFromSums = allZero && model.dtype() == torch.ScalarType.Float;
        return mode;
    }

    /**
     * Patch mode for passes in which every mask holds the same value {@code alpha} (the points of integrated
     * gradients). The gradient that reaches a current source output u through the destinations v that read it is then
     * {@code −Σ_v m[v,u] · ∂L/∂in_v = −alpha · Σ_v ∂L/∂in_v}, the same for every source a destination reads, so it
     * need not go through the kernels per source: the pass runs as {@link #patchModeAtZeroMasks} does (differences
     * constant to autograd, one shared source buffer, no per-destination concatenation) and each destination adds
     * {@code −alpha · (T − T.detach())} to its input, where T is the sum of the source outputs it reads. That term is
     * exactly 0 in value and carries exactly that gradient to every source it sums. Mask gradients are unchanged up to
     * float rounding. Falls back to {@link #patchMode(Tensor)} when a mask differs from {@code alpha} or the applied
     * masks are not the masks themselves (a mask function, mask dropout, per-example masks). The caller must keep
     * every mask at {@code alpha} while the scope is open. Where {@link #sharedHeadInputsSupported()} holds, the Q,
     * K and V heads of a block also read one shared input (one norm and one product each, as in the plain model), and
     * the mask gradients of those destinations come from {@link PatchMode#backward}, which such passes need instead of
     * a plain {@code loss.backward()}. In a float32 model the one-row destinations (MLP inputs, the final residual, and
     * the shared Q/K/V input) read {@code x + alpha · D} with D the running sum of {@code patch − curr} over the
     * sources read so far (each source's difference read once per pass, not once per destination), and their mask
     * gradients also come from {@link PatchMode#backward}: one product of their input gradients with the differences.
     */
    public PatchMode patchModeAtUniformMasks(Tensor patchSrcOuts, double alpha) {
        return patchModeAtUniformMasks(patchSrcOuts, alpha, null);
    }

    /**
     * {@link #patchModeAtUniformMasks(Tensor, double)} with a reusable current-output buffer, the caller's scratch, as
     * {@link #patchModeAtZeroMasks(Tensor, Tensor)}.
     */
    public PatchMode patchModeAtUniformMasks(Tensor patchSrcOuts, double alpha, Tensor currBuffer) {
        ensureOpen();
        if (!appliesMasksAsSet() || !Double.isFinite(alpha) || !masksAllEqual(alpha)) {
            return patchMode(patchSrcOuts, currBuffer);
        }
        PatchMode mode = patchMode(patchSrcOuts, currBuffer);
        mode.currScratch = currBuffer != null;
        currGradients = false;
        uniformMask = alpha;
        sharedHeadInputs = sharedHeadInputsSupported();   // the masks were checked to be applied as set, all alpha
        rowInputsFromSums = model.dtype() == torch.ScalarType.Float;
        return mode;
    }

    /**
     * Whether the Q, K and V heads of a block may read one shared input in a pass under autograd once every mask is
     * known to hold one value and to be applied as set (so every head's input is {@code x + a · Σ (patch − curr)} over
     * the same sources): one mask row per head (no per-position rows), and a model that gives per-head input gradients
     * of float32 projections ({@link HookedModel#headInputGradients}).
     */
    private boolean sharedHeadInputsSupported() {
        return graph.seqLen().isEmpty() && model.supportsHeadInputGradients() && model.dtype() == torch.ScalarType.Float;
    }

    /**
     * A Q, K or V destination whose heads read one shared input in a pass under autograd: the input, and the projection
     * computed from it, whose retained gradient gives every head's input gradient after the backward pass.
     */
    private static final class SharedHeads {
        final DestModule dm;
        final Tensor input;           // [batch, seq, dModel]
        Tensor projection;            // [batch, seq, nHeads, dHead], retains its gradient

        SharedHeads(DestModule dm, Tensor input) {
            this.dm = dm;
            this.input = input;
        }
    }

    /** A one-row destination whose input came from the running difference sum; {@code input} retains its gradient. */
    private record RowDestination(DestModule dm, Tensor input) { }

    /**
     * The mask gradients of the destinations in {@link #pendingRows} ({@link #finishRowGradients}) and
     * {@link #pendingHeads}, after the backward pass: with g_h the gradient at head h's input
     * ({@link HookedModel#headInputGradients}), {@code ∂L/∂m[h, i] = Σ_tokens g_h · (patch_i − curr_i)}, what the
     * edge-patching kernels' backward computes for a destination whose heads each have their own input. One matrix
     * product per group of destinations reading the same input (a block's Q, K and V), against one {@code patch − curr}
     * for the pass.
     *
     * @param currScratch the current-output buffer is the caller's scratch (see {@link #patchModeAtZeroMasks(Tensor,
     *                    Tensor)}), dead once the backward pass has run: the differences are formed in it, negated
     *                    ({@code curr − patch}, one in-place pass), and the products' signs flipped. Otherwise a new
     *                    buffer holds them for the call.
     */
    private void finishDeferredGradients(boolean currScratch) {
        if (pendingHeads.isEmpty() && pendingRows.isEmpty()) return;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            // One difference for the pass. In the caller's scratch buffer, in place: a new 116 MB buffer per GPT-2-small
            // pass at W2's batches was above glibc's mmap threshold, so every pass page-faulted it in afresh (0.81 s of
            // W2). Otherwise a new buffer, freed when done (one kept across passes would add its size to every later
            // forward pass's memory). fl(c − p) = −fl(p − c) exactly, so the flipped signs (flipSign) give the same bits.
            Tensor delta = currScratch ? currSrcOuts.sub_(patchSrcOuts)               // [nSrc, batch, seq, dModel]
                : patchSrcOuts.sub(currSrcOuts);
            double sign = currScratch ? -1.0 : 1.0;
            long tokenElems = delta.numel() / delta.size(0);
            finishRowGradients(delta, tokenElems, sign);
            int i = 0;
            while (i < pendingHeads.size()) {
                SharedHeads first = pendingHeads.get(i);
                int j = i;
                List<SharedHeads> group = new ArrayList<>();
                List<String> names = new ArrayList<>();
                List<Tensor> grads = new ArrayList<>();
                List<Tensor> projections = new ArrayList<>();
                while (j < pendingHeads.size() && pendingHeads.get(j).input == first.input) {
                    SharedHeads h = pendingHeads.get(j++);
                    Tensor pg = h.projection.grad();
                    if (!pg.defined()) continue;      // no gradient reached these heads: nothing to add
                    group.add(h);
                    names.add(h.dm.moduleName());
                    grads.add(pg);
                    projections.add(h.projection.detach());
                }
                if (!group.isEmpty()) {
                    Tensor all = model.headInputGradients(names, first.input, projections, grads);   // [rows, tokens, dModel]
                    long rows = all.size(0);
                    Tensor d = delta.narrow(0, first.dm.inSrcStart(), first.dm.nIn()).reshape(first.dm.nIn(), tokenElems);
                    // [rows, nIn], computed as (d · allᵀ)ᵀ: with the sources as the product's rows OpenBLAS ran it 30%
                    // faster on this machine (block 11 of GPT-2 small: 23 against 34 ms), the product being bound by
                    // reading d and all once
                    Tensor scores = d.mm(all.reshape(rows, tokenElems).t()).t();
                    if (sign < 0) scores = flipSign(scores);
                    long off = 0;
                    for (SharedHeads h : group) {
                        Tensor mask = masks.get(h.dm.moduleName());
                        long heads = mask.size(0);
                        addMaskGradient(mask, scores.narrow(0, off, heads).reshape(mask.shape()));
                        off += heads;
                    }
                }
                i = j;
            }
        } finally {
            pendingHeads.clear();
            pendingRows.clear();
        }
    }

    /**
     * The mask gradients of the destinations in {@link #pendingRows}: {@code ∂L/∂m[i] = Σ g · (patch_i − curr_i)} with
     * g the gradient at the destination's input, what the kernels' backward computes per destination, here as one
     * product of every such gradient with the differences of the longest prefix read.
     */
    private void finishRowGradients(Tensor delta, long tokenElems, double sign) {
        List<RowDestination> rows = new ArrayList<>();
        List<Tensor> grads = new ArrayList<>();
        long longest = 0;
        for (RowDestination r : pendingRows) {
            Tensor grad = r.input().grad();
            if (!grad.defined()) continue;            // no gradient reached this input: nothing to add
            rows.add(r);
            grads.add(grad.reshape(1, tokenElems));
            longest = Math.max(longest, r.dm().nIn());
        }
        if (rows.isEmpty()) return;
        Tensor g = grads.size() == 1 ? grads.get(0) : torch.cat(new TensorVector(grads.toArray(new Tensor[0])), 0);
        Tensor scores = delta.narrow(0, 0, longest).reshape(longest, tokenElems).mm(g.t()).t();   // [rows, longest], as above
        if (sign < 0) scores = flipSign(scores);
        for (int i = 0; i < rows.size(); i++) {
            DestModule dm = rows.get(i).dm();
            Tensor mask = masks.get(dm.moduleName());
            addMaskGradient(mask, scores.select(0, i).narrow(0, 0, dm.nIn()).reshape(mask.shape()));
        }
    }

    /**
     * {@code −x} with zeros kept at +0: products against {@code curr − patch} are exactly the negatives of those
     * against {@code patch − curr} (IEEE subtraction and multiplication are sign-symmetric), but where
     * {@code patch = curr} both differences are +0, so an exact zero score came out +0 from one and −0 from the other.
     * Adding +0 after the negation maps −0 to +0 and leaves every other value as it is.
     */
    private static Tensor flipSign(Tensor x) {
        return x.neg().add_(new Scalar(0.0));
    }

    /** Adds {@code part} to {@code mask}'s gradient, as autograd accumulates a leaf's gradient. */
    private static void addMaskGradient(Tensor mask, Tensor part) {
        Tensor grad = mask.mutable_grad();
        if (grad.defined()) {
            grad.add_(part);
        } else {
            grad.put(part.clone());
        }
    }

    /** Whether every element of every mask equals {@code value} (compared in the masks' dtype). */
    private boolean masksAllEqual(double value) {
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (Tensor m : masks.values()) {
                if (m.numel() > 0 && m.ne(new Scalar(value)).any().item_bool()) return false;
            }
        }
        return true;
    }

    /** Patch mode with the given edges (by name, every position) ablated and every other edge kept. */
    public PatchMode patchModeWithEdges(Tensor patchSrcOuts, java.util.Collection<?> edgesOrNames) {
        setMasks(PruneScores.circuit(graph, edgesOrNames));
        return patchMode(patchSrcOuts, (Tensor) null);
    }

    /**
     * Whether patched passes apply the masks exactly as set: no mask function, no mask dropout in training, no
     * per-example masks.
     */
    public boolean appliesMasksAsSet() {
        return maskFn == MaskFn.NONE && !(training && dropoutP > 0) && maskBatchSize == 0;
    }

    /** Whether patch mode is on. */
    public boolean inPatchMode() {
        return patchSrcOuts != null;
    }

    /** The current-output buffer of the last patched pass (for inspection and drawing). */
    public Tensor currSrcOuts() {
        return currSrcOuts;
    }

    /** The scope of one patch mode; closing it restores the previous patch state. */
    public final class PatchMode implements AutoCloseable {
        private final Tensor prevPatch;
        private final Tensor prevCurr;
        private final boolean prevCurrGradients;
        private final double prevUniformMask;
        private final boolean prevSharedHeadInputs;
        private final boolean prevRowInputsFromSums;
        private final NormScales prevFrozen;
        private boolean currScratch;    // the current-output buffer is the caller's scratch (see finishDeferredGradients)
        private boolean closed;

        private PatchMode(Tensor prevPatch, Tensor prevCurr, boolean prevCurrGradients, double prevUniformMask,
                          boolean prevSharedHeadInputs, boolean prevRowInputsFromSums, NormScales prevFrozen) {
            this.prevPatch = prevPatch;
            this.prevCurr = prevCurr;
            this.prevCurrGradients = prevCurrGradients;
            this.prevUniformMask = prevUniformMask;
            this.prevSharedHeadInputs = prevSharedHeadInputs;
            this.prevRowInputsFromSums = prevRowInputsFromSums;
            this.prevFrozen = prevFrozen;
        }

        /**
         * Every patched pass of this scope takes its norm scales from {@code scales}, the unpatched run of its input
         * ({@link #normScales}): needed by passes that start at a later block ({@link #residualFromBlock},
         * {@link #forwardFromBlock}) of a model with {@link HookedModel#normScaleHooks() norm scales}, which have no
         * tokens to find them by; passes from the first block find them themselves. Null (what {@link #normScales}
         * gives for models without norm scales) changes nothing. Returns this scope.
         *
         * @throws IllegalArgumentException when {@code scales} are not this model's
         */
        public PatchMode freezeNormScales(NormScales scales) {
            if (closed) throw new IllegalStateException("this patch mode is closed");
            if (scales != null && !scales.hookNames().equals(List.copyOf(normScaleIndex.keySet()))) {
                throw new IllegalArgumentException("freezeNormScales: scales for " + scales.hookNames()
                    + ", but this model's norm scales are " + normScaleIndex.keySet());
            }
            frozenScales = scales;
            return this;
        }

        /**
         * {@code loss.backward()}, then the mask gradients of the destinations whose inputs the pass shared among heads or
         * formed from the running sum (see {@link #patchModeAtZeroMasks} and {@link #patchModeAtUniformMasks}), added to the masks'
         * gradients as autograd adds the others'. Passes in these modes need this instead of a plain
         * {@code loss.backward()}: closing the mode after one would throw rather than leave those gradients out.
         */
        public void backward(Tensor loss) {
            if (closed) throw new IllegalStateException("PatchMode.backward after the mode was closed");
            loss.backward();
            finishDeferredGradients(currScratch);
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            boolean missed = false;
            try (PointerScope s = new PointerScope()) {
                for (SharedHeads h : pendingHeads) missed |= h.projection != null && h.projection.grad().defined();
                for (RowDestination r : pendingRows) missed |= r.input().grad().defined();
            }
            pendingHeads.clear();
            pendingRows.clear();
            patchSrcOuts = prevPatch;
            currSrcOuts = prevCurr;
            currGradients = prevCurrGradients;
            uniformMask = prevUniformMask;
            frozenScales = prevFrozen;
            sharedHeadInputs = prevSharedHeadInputs;
            rowInputsFromSums = prevRowInputsFromSums;
            if (missed) {
                throw new IllegalStateException("a backward pass ran outside PatchMode.backward: the mask gradients of "
                    + "the destinations whose inputs were shared or formed from sums were not computed; call "
                    + "mode.backward(loss)");
            }
        }
    }

    /**
     * Makes the masks trainable: zeroes their gradients, sets {@code requires_grad}, and turns on mask
     * dropout. Closing restores the previous settings. Modifies the model's state.
     */
    public MaskTraining trainMaskMode() {
        ensureOpen();
        boolean prevTraining = training;
        boolean prevRequiresGrad = masks.values().stream().anyMatch(Tensor::requires_grad);
        zeroMaskGrads();
        for (Tensor m : masks.values()) m.set_requires_grad(true);
        training = true;
        return new MaskTraining(prevTraining, prevRequiresGrad);
    }

    /** Drops accumulated mask gradients. */
    public void zeroMaskGrads() {
        try (PointerScope s = new PointerScope()) {
            for (Tensor m : masks.values()) {
                Tensor g = m.grad();
                if (g.defined()) g.zero_();
            }
        }
    }

    /** The scope of {@link #trainMaskMode()}. */
    public final class MaskTraining implements AutoCloseable {
        private final boolean prevTraining;
        private final boolean prevRequiresGrad;
        private boolean closed;

        private MaskTraining(boolean prevTraining, boolean prevRequiresGrad) {
            this.prevTraining = prevTraining;
            this.prevRequiresGrad = prevRequiresGrad;
        }

        /** The trainable masks, by destination module. */
        public Map<String, Tensor> masks() {
            return PatchableModel.this.masks();
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            training = prevTraining;
            for (Tensor m : masks.values()) m.set_requires_grad(prevRequiresGrad);
        }
    }

    /**
     * Per-example masks (AutoCircuit's {@code set_mask_batch_size}): every mask becomes a new leaf with a leading
     * dimension of {@code batchSize}, each element a copy of the current mask, so that one backward pass gives each
     * example's mask gradient ({@link #exampleMaskGradients}). Forward passes then need inputs of exactly that batch
     * size. Closing writes element 0 back into the model's own masks (keeping their {@code requires_grad}) and frees
     * the batched ones; gradients read before closing stay valid. Unlike AutoCircuit, the other helpers keep
     * working inside the scope ({@link #setMasks} copies to every example, {@link #maskGradients} sums over them,
     * the sigmoid mask function keeps the batch dimension): quirk 15 of docs/quirks.md is fixed. Does not nest.
     *
     * @throws IllegalArgumentException when {@code batchSize < 1}
     * @throws IllegalStateException    when per-example masks are already active
     */
    public MaskBatch maskBatchSize(int batchSize) {
        ensureOpen();
        if (batchSize < 1) throw new IllegalArgumentException("maskBatchSize must be >= 1, got " + batchSize);
        if (maskBatchSize > 0) {
            throw new IllegalStateException("per-example masks are already active (batch size " + maskBatchSize + ")");
        }
        Map<String, Tensor> originals = new LinkedHashMap<>(masks);
        OwnedTensors batched = new OwnedTensors();
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : originals.entrySet()) {
                Tensor m = e.getValue();
                long[] repeats = new long[(int) m.dim() + 1];
                java.util.Arrays.fill(repeats, 1);
                repeats[0] = batchSize;
                Tensor b = batched.adopt(m.detach().unsqueeze(0).repeat(repeats));
                b.set_requires_grad(m.requires_grad());
                masks.put(e.getKey(), b);
            }
        }
        maskBatchSize = batchSize;
        return new MaskBatch(originals, batched);
    }

    /** The scope of {@link #maskBatchSize}. */
    public final class MaskBatch implements AutoCloseable {
        private final Map<String, Tensor> originals;
        private final OwnedTensors batched;
        private boolean closed;

        private MaskBatch(Map<String, Tensor> originals, OwnedTensors batched) {
            this.originals = originals;
            this.batched = batched;
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                for (Map.Entry<String, Tensor> e : originals.entrySet()) {
                    e.getValue().copy_(masks.get(e.getKey()).select(0, 0));
                    masks.put(e.getKey(), e.getValue());
                }
            } finally {
                maskBatchSize = 0;
                batched.close();
            }
        }
    }

    /**
     * While the returned scope is open, a mask function that samples per prompt ({@link MaskFn#addsBatchDim()})
     * draws its samples for a whole batch of {@code whole} prompts and a forward pass over a part of that batch,
     * prompts {@code [start, start + batch)}, uses their rows. A data-parallel rank evaluating its part of a batch
     * thus draws exactly the random numbers one process draws for the whole batch, and leaves the generator in the
     * same state.
     */
    public SampleRows sampleRowsOf(long whole, int start) {
        ensureOpen();
        if (whole < 1 || start < 0 || start >= whole) {
            throw new IllegalArgumentException("prompt " + start + " is not in a batch of " + whole);
        }
        if (maskBatchSize > 0) throw new IllegalStateException("sampleRowsOf does not combine with maskBatchSize");
        long prevWhole = sampleWhole, prevStart = sampleStart;
        sampleWhole = whole;
        sampleStart = start;
        return () -> {
            sampleWhole = prevWhole;
            sampleStart = prevStart;
        };
    }

    /** The scope of {@link #sampleRowsOf}. */
    @FunctionalInterface
    public interface SampleRows extends AutoCloseable {
        @Override
        void close();
    }

    /** Sets the mask function and mask dropout; closing restores the previous ones. Modifies the model's state. */
    public MaskFnMode maskFnMode(MaskFn fn, double dropout) {
        ensureOpen();
        if (dropout < 0 || dropout >= 1) throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
        MaskFnMode mode = new MaskFnMode(maskFn, dropoutP);
        maskFn = Objects.requireNonNull(fn, "fn");
        dropoutP = dropout;
        return mode;
    }

    /** The scope of {@link #maskFnMode}. */
    public final class MaskFnMode implements AutoCloseable {
        private final MaskFn prevFn;
        private final double prevDropout;
        private boolean closed;

        private MaskFnMode(MaskFn prevFn, double prevDropout) {
            this.prevFn = prevFn;
            this.prevDropout = prevDropout;
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            maskFn = prevFn;
            dropoutP = prevDropout;
        }
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("PatchableModel is closed");
    }

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(PatchableModel.class);
    private final Map<Class<?>, AutoCloseable> derived = new HashMap<>();

    /**
     * A value an algorithm derives from this model's weights alone (ACDC's unembedding tables), made by {@code make}
     * on the first call for {@code kind} and returned by every later one; closed with the model. The weights never
     * change, so it never goes stale.
     */
    public synchronized <T extends AutoCloseable> T derived(Class<T> kind, java.util.function.Supplier<T> make) {
        ensureOpen();
        AutoCloseable value = derived.get(kind);
        if (value == null) {
            value = make.get();
            derived.put(kind, value);
        }
        return kind.cast(value);
    }

    /** Frees the masks, the KV caches, what algorithms derived from the weights, and the wrapped model. Closing twice is a no-op. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        synchronized (this) {
            for (AutoCloseable d : derived.values()) {
                try {
                    d.close();
                } catch (Exception e) {
                    LOG.warn("closing {}: {}", d.getClass().getSimpleName(), e.toString());
                }
            }
            derived.clear();
        }
        owned.close();
        cleanScales.clear();
        kvCaches.values().forEach(KvCache::close);
        kvCaches.clear();
        model.close();
    }
}
