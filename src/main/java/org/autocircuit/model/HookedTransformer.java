package org.autocircuit.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.kernels.Device;
import org.autocircuit.model.arch.Architecture;
import org.autocircuit.model.arch.Architectures;
import org.autocircuit.util.OwnedTensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The one hooked transformer, with TransformerLens's hook points and weight layout ({@code W_Q [nHeads, dModel,
 * dHead]}, {@code W_O [nHeads, dHead, dModel]}, ...), whose pieces the {@link ModelConfig} chooses: learned or
 * rotary positions (full or partial, half-split layout, {@code linear} / {@code llama3} scaling), LayerNorm or
 * RMSNorm, a plain or gated MLP, sequential or parallel attention and MLP, optional biases, grouped-query attention,
 * a tied or untied unembedding, and the {@link ModelConfig.Extras} some families add (sliding-window attention,
 * soft-capping, norms after attention and MLP, scaled embeddings). One adapter per Hugging Face architecture
 * ({@link org.autocircuit.model.arch}) maps a checkpoint onto it.
 *
 * <p>It follows {@code HookedTransformer} with {@code use_attn_result}, {@code use_split_qkv_input}
 * (or {@code use_attn_in}), {@code use_hook_mlp_in} and {@code ungroup_grouped_query_attention} on, and no weight
 * processing ({@code from_pretrained_no_processing}): the attention output is written per head ({@code hook_result},
 * without {@code b_O}) and then summed, and per-head Q/K/V inputs go through the first norm separately for each head
 * copy, because patching can make the copies differ. With grouped-query attention every query head has its own K and
 * V input (the "ungrouped" graph layout), projected by the weights of its key/value head. Left padding is handled as
 * TransformerLens does: masked keys, positions shifted so that the first real token is position 0, a zero position
 * embedding at padded positions (learned positions), and fully masked rows set to 0 instead of NaN.
 *
 * <p>Ownership: the model owns its weights ({@link #close()} frees them); every forward pass creates its
 * tensors in the caller's current {@link PointerScope}.
 *
 * <p>Device and dtype: the weights live on the model's {@link #device()} in its dtype. The adapter builds them on the
 * host one tensor at a time, each converted to the model's dtype as soon as it is made (a checkpoint's tensor already
 * in that dtype, such as BF16 for a bfloat16 model, is read straight into it), so the host holds the weights once, in
 * the model's dtype, plus one tensor's float32 copy at a time; then each is copied to the device, and the host copies
 * are freed when the build ends. Every intermediate of a pass is made
 * on the device, and token ids and padding masks handed in from elsewhere are moved to it on entry.
 */
public final class HookedTransformer implements HookedModel {
    private final ModelConfig cfg;
    private final Device device;
    private final torch.ScalarType dtype;   // of the weights and every activation: float32, bfloat16 or float16
    private final OwnedTensors owned = new OwnedTensors();
    private final Tensor wE;        // [dVocab, dModel]
    private final Tensor wPos;      // [nCtx, dModel], null with rotary positions
    private final Block[] blocks;
    private final Tensor lnFinalW;  // [dModel]
    private final Tensor lnFinalB;  // [dModel] or null (RMSNorm)
    private final Tensor wU;        // [dModel, dVocab]
    private final Tensor bU;        // [dVocab] or null when zero
    private final Tensor rotaryFreq;    // [rotaryDim] the divisor of each rotary dimension's angle, or null
    private final Tensor kvHeadOfHead;  // [nHeads] int64 key/value head of every query head, null without GQA
    private volatile boolean closed;

    /** The weights of one block, in TransformerLens layout; absent biases and norm biases are null. */
    private record Block(
            Tensor ln1W, Tensor ln1B,
            Tensor wQ, Tensor wK, Tensor wV,             // [nHeads, dModel, dHead], K/V [nKvHeads, dModel, dHead]
            Tensor wQFlat, Tensor wKFlat, Tensor wVFlat, // [dModel, heads*dHead], for the shared-input fast path
            Tensor bQ, Tensor bK, Tensor bV,             // [nHeads, dHead], K/V [nKvHeads, dHead]
            Tensor wO, Tensor bO,                        // [nHeads, dHead, dModel], [dModel]
            Tensor ln2W, Tensor ln2B,
            Tensor wIn, Tensor bIn, Tensor wGate,        // [dModel, dMlp], [dMlp], [dModel, dMlp]
            Tensor wOut, Tensor bOut,                    // [dMlp, dModel], [dModel]
            Tensor ln1PostW, Tensor ln2PostW) {}         // [dModel] post-norm gains (Gemma-2) or null

    private HookedTransformer(ModelConfig cfg, TransformerWeights w, Device device, torch.ScalarType dtype) {
        this.cfg = cfg;
        this.device = java.util.Objects.requireNonNull(device, "device");
        this.dtype = dtype;
        try (PointerScope scope = new PointerScope()) {
            if (w.blocks().size() != cfg.nLayers()) {
                throw new IllegalArgumentException("weights have " + w.blocks().size() + " blocks, config " + cfg.nLayers());
            }
            if (w.wPos() == null && cfg.positions() instanceof ModelConfig.Learned) {
                throw new IllegalArgumentException("learned positions need W_pos");
            }
            wE = own(w.wE());
            wPos = w.wPos() == null ? null : own(w.wPos());
            blocks = new Block[cfg.nLayers()];
            int d = cfg.dModel();
            for (int b = 0; b < cfg.nLayers(); b++) {
                TransformerWeights.Block x = w.blocks().get(b);
                blocks[b] = new Block(own(x.ln1W()), ownOrNull(x.ln1B()),
                    own(x.wQ()), own(x.wK()), own(x.wV()),
                    own(flat(x.wQ(), d)), own(flat(x.wK(), d)), own(flat(x.wV(), d)),
                    ownOrNull(x.bQ()), ownOrNull(x.bK()), ownOrNull(x.bV()),
                    own(x.wO()), ownOrNull(x.bO()),
                    ownOrNull(x.ln2W()), ownOrNull(x.ln2B()),
                    ownOrNull(x.wIn()), ownOrNull(x.bIn()), ownOrNull(x.wGate()),
                    ownOrNull(x.wOut()), ownOrNull(x.bOut()),
                    ownOrNull(x.ln1PostW()), ownOrNull(x.ln2PostW()));
                if (cfg.extras().postNorms() != (x.ln1PostW() != null && x.ln2PostW() != null)) {
                    throw new IllegalArgumentException("block " + b + ": post-norm weights "
                        + (cfg.extras().postNorms() ? "missing" : "given") + " but the config's postNorms is "
                        + cfg.extras().postNorms());
                }
            }
            lnFinalW = own(w.lnFinalW());
            lnFinalB = ownOrNull(w.lnFinalB());
            wU = own(w.wU());
            bU = ownOrNull(w.bU());
            // rotary angles are formed in float32 whatever the model's dtype (positions up to n_ctx need the bits)
            rotaryFreq = cfg.positions() instanceof ModelConfig.Rotary r
                ? owned.adopt(onDevice(RotaryFrequencies.of(r))) : null;
            kvHeadOfHead = cfg.groupSize() == 1 ? null
                : owned.adopt(onDevice(kvHeads(cfg.nHeads(), cfg.groupSize())));
        } catch (RuntimeException e) {
            owned.close();
            throw e;
        }
    }

    /** {@code [nHeads]} int64: query head h reads key/value head {@code h / groupSize}. */
    private static Tensor kvHeads(int nHeads, int groupSize) {
        long[] kv = new long[nHeads];
        for (int h = 0; h < nHeads; h++) kv[h] = h / groupSize;
        return org.bytedeco.pytorch.AbstractTensor.create(kv, nHeads);
    }

    /** Per-head weights {@code [n, dModel, dHead]} as one matrix {@code [dModel, n*dHead]}. */
    private static Tensor flat(Tensor heads, int d) {
        return heads.permute(1, 0, 2).reshape(d, -1).contiguous();
    }

    /**
     * Adopts a weight in the model's dtype on its device: converted on the host first (a 16-bit model moves half the
     * bytes), then copied; the intermediate copies go with the build scope.
     */
    private Tensor own(Tensor t) {
        Tensor typed = t.scalar_type().intern() == dtype ? t : t.to(dtype);
        return owned.adopt(onDevice(typed));
    }

    private Tensor ownOrNull(Tensor t) {
        return t == null ? null : own(t);
    }

    /** {@code t} itself when it is on the model's device, else a copy there (null stays null). */
    private Tensor onDevice(Tensor t) {
        return device.place(t);
    }

    /** Options for a new tensor of {@code dtype} on the model's device. */
    private TensorOptions options(torch.ScalarType dtype) {
        return device.options(dtype);
    }

    /**
     * Loads a Hugging Face model folder: {@code config.json} and {@code model.safetensors} (or the shards
     * {@code model.safetensors.index.json} lists), through the adapter of its architecture. F16 and BF16 weights are
     * converted to float32 one tensor at a time (see {@link #fromPretrained(Path, WeightProcessing, Device,
     * torch.ScalarType)} to keep them in their dtype).
     *
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException naming the file and field or tensor when the folder does not hold a
     *                                  supported model, or a tensor's shape disagrees with {@code config.json}
     */
    public static HookedTransformer fromPretrained(Path folder) throws IOException {
        return fromPretrained(folder, WeightProcessing.NONE);
    }

    /**
     * {@link #fromPretrained(Path)} with the weights rewritten by {@code processing} before the model is built
     * ({@link WeightProcessing#TL}: what AutoCircuit's {@code load_tl_model} does; GPT-2 checkpoints only).
     */
    public static HookedTransformer fromPretrained(Path folder, WeightProcessing processing) throws IOException {
        return fromPretrained(folder, processing, Device.CPU);
    }

    /**
     * {@link #fromPretrained(Path, WeightProcessing)} with the weights on {@code device}: read and built on the host
     * in float32, then copied to the device one tensor at a time.
     *
     * @throws IllegalStateException when the device is unavailable (no CUDA build, no such device index), before
     *                               any file is read
     */
    public static HookedTransformer fromPretrained(Path folder, WeightProcessing processing, Device device)
            throws IOException {
        return fromPretrained(folder, processing, device, torch.ScalarType.Float);
    }

    /**
     * {@link #fromPretrained(Path, WeightProcessing, Device)} with the weights, and so every activation, in
     * {@code dtype}: float32, bfloat16 or float16. Tensors stored in {@code dtype} are read straight into it; others
     * are read as float32, and each weight is converted to {@code dtype} as soon as the adapter has made it, so the
     * model never exists in float32 as a whole ({@link WeightProcessing#TL} processing runs in float32 on the
     * float32 checkpoint, for GPT-2-sized models).
     * Masks stay float32; the edge-patching kernels accumulate in float32 and round once.
     *
     * @throws IllegalArgumentException for another dtype, naming it
     */
    public static HookedTransformer fromPretrained(Path folder, WeightProcessing processing, Device device,
                                                   torch.ScalarType dtype) throws IOException {
        java.util.Objects.requireNonNull(processing, "processing");
        java.util.Objects.requireNonNull(device, "device").ensureAvailable();
        checkDtype(dtype);
        if (!Files.isDirectory(folder)) {
            throw new IllegalArgumentException("model folder " + folder + " does not exist or is not a directory");
        }
        Path config = folder.resolve("config.json");
        if (!Files.isRegularFile(config)) {
            throw new IllegalArgumentException("model folder " + folder + " lacks config.json (expected config.json and "
                + "model.safetensors in Hugging Face format)");
        }
        Architectures.Read read = Architectures.readConfig(config);
        if (processing != WeightProcessing.NONE && !(read.architecture() instanceof org.autocircuit.model.arch.Gpt2)) {
            throw new IllegalArgumentException("weight processing '" + processing.cliName() + "' is implemented for "
                + "GPT-2 checkpoints; " + config + " holds " + read.config().architecture());
        }
        try (Checkpoint checkpoint = Checkpoint.open(folder); PointerScope scope = new PointerScope()) {
            if (processing != WeightProcessing.NONE) {
                WeightSource source = processing.apply(read.config(), checkpoint);
                // TL processing rewrites every weight on its first request and serves them from then on: make that
                // request here, so the processed weights live in this scope rather than in the scope of the first
                // tensor converted. (It holds the processed checkpoint beside the model while building; GPT-2-sized
                // models only.) The config/weights checks below apply to plain loads.
                source.loadIfPresent("lm_head.bias", read.config().dVocab());
                return build(read.architecture(), processing.config(read.config()), source, device, dtype);
            }
            ModelConfig cfg = read.config();
            checkLayers(cfg, checkpoint, config);
            java.util.Set<String> used = new java.util.HashSet<>();
            WeightSource tracked = new WeightSource() {
                @Override
                public Tensor load(String name, long... shape) {
                    used.add(name);
                    return checkpoint.load(name, shape);
                }

                @Override
                public boolean has(String name) {
                    return checkpoint.has(name);
                }

                @Override
                public Tensor loadIfPresent(String name, long... shape) {
                    used.add(name);
                    return checkpoint.loadIfPresent(name, shape);
                }

                @Override
                public Tensor loadFor(torch.ScalarType dtype, String name, long... shape) {
                    used.add(name);
                    return checkpoint.loadFor(dtype, name, shape);
                }
            };
            HookedTransformer model = build(read.architecture(), processing.config(cfg), processing.apply(cfg, tracked),
                device, dtype);
            try {
                checkLeftovers(cfg, checkpoint, used, config);
            } catch (RuntimeException e) {
                model.close();
                throw e;
            }
            return model;
        }
    }

    /** Tensors checkpoints may hold that are buffers, not weights (GPT-2's causal mask, rotary frequencies). */
    private static final java.util.regex.Pattern BUFFERS =
        java.util.regex.Pattern.compile(".*\\.attn\\.(bias|masked_bias)|.*rotary_emb\\.inv_freq");
    private static final java.util.regex.Pattern LAYER = java.util.regex.Pattern.compile(".*?\\.(?:h|layers)\\.(\\d{1,9})\\..*");

    /**
     * Before anything is allocated: the checkpoint's blocks must be the config's layer count (an absurd
     * {@code n_layer} is an error here, not an OutOfMemoryError), and an attention-only config meets no MLP weights.
     */
    private static void checkLayers(ModelConfig cfg, Checkpoint checkpoint, Path config) {
        java.util.TreeSet<Long> layers = new java.util.TreeSet<>();
        for (String name : checkpoint.names()) {
            var m = LAYER.matcher(name);
            if (m.matches()) layers.add(Long.parseLong(m.group(1)));
        }
        if (!layers.isEmpty() && (layers.size() != cfg.nLayers() || layers.last() != cfg.nLayers() - 1)) {
            throw new IllegalArgumentException(config + ": the config has " + cfg.nLayers() + " layers (n_layer / "
                + "num_hidden_layers), but the weights hold " + layers.size() + " blocks (" + layers.first() + " .. "
                + layers.last() + ")");
        }
        if (cfg.attnOnly()) {
            for (String name : checkpoint.names()) {
                if (name.contains(".mlp.")) {
                    throw new IllegalArgumentException(config + ": field 'attn_only' is true, but the weights hold MLP "
                        + "weights (\"" + name + "\"); set attn_only to false or remove them");
                }
            }
        }
    }

    /**
     * After loading: every tensor of the checkpoint must have been used, bar known buffers; an {@code lm_head.weight}
     * beside tied embeddings (which the model ignores) is refused, since the config and weights disagree.
     */
    private static void checkLeftovers(ModelConfig cfg, Checkpoint checkpoint, java.util.Set<String> used, Path config) {
        java.util.List<String> unknown = new java.util.ArrayList<>();
        for (String name : checkpoint.names()) {
            if (!used.contains(name) && !BUFFERS.matcher(name).matches()) unknown.add(name);
        }
        if (unknown.contains("lm_head.weight") && cfg.tiedUnembed()) {
            throw new IllegalArgumentException(config + ": the embeddings are tied (tie_word_embeddings is true or "
                + "absent), but the weights hold a separate lm_head.weight, which would be ignored; set "
                + "tie_word_embeddings to false to use it");
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(config.resolveSibling(Checkpoint.SINGLE_FILE) + ": " + unknown.size()
                + " tensor(s) this " + cfg.architecture() + " model does not use, e.g. "
                + unknown.subList(0, Math.min(5, unknown.size())) + " (a config that does not match the weights?)");
        }
    }

    /** Builds a model from any weight source that uses the tensor names of {@code cfg}'s architecture. */
    public static HookedTransformer fromWeights(ModelConfig cfg, WeightSource namedWeights)
            throws IOException {
        return fromWeights(cfg, namedWeights, Device.CPU);
    }

    /** {@link #fromWeights(ModelConfig, WeightSource)} with the weights copied to {@code device}. */
    public static HookedTransformer fromWeights(ModelConfig cfg, WeightSource namedWeights, Device device)
            throws IOException {
        return fromWeights(cfg, namedWeights, device, torch.ScalarType.Float);
    }

    /** {@link #fromWeights(ModelConfig, WeightSource, Device)} with the weights in {@code dtype} (see {@link #fromPretrained(Path, WeightProcessing, Device, torch.ScalarType)}). */
    public static HookedTransformer fromWeights(ModelConfig cfg, WeightSource namedWeights, Device device,
                                                torch.ScalarType dtype) throws IOException {
        java.util.Objects.requireNonNull(device, "device").ensureAvailable();
        checkDtype(dtype);
        return build(Architectures.forName(cfg.architecture()), cfg, namedWeights, device, dtype);
    }

    /** The model dtypes: float32, bfloat16 and float16. */
    public static void checkDtype(torch.ScalarType dtype) {
        if (dtype == null) throw new IllegalArgumentException("model dtype must not be null");
        torch.ScalarType d = dtype.intern();
        if (d != torch.ScalarType.Float && d != torch.ScalarType.BFloat16 && d != torch.ScalarType.Half) {
            throw new IllegalArgumentException("model dtype must be float32, bfloat16 or float16, got " + d);
        }
    }

    /** Parses a model dtype name: {@code float32}, {@code bfloat16} or {@code float16} (also fp32, bf16, fp16). */
    public static torch.ScalarType parseDtype(String name) {
        String n = name == null ? "" : name.trim().toLowerCase(java.util.Locale.ROOT);
        return switch (n) {
            case "float32", "fp32", "float" -> torch.ScalarType.Float;
            case "bfloat16", "bf16" -> torch.ScalarType.BFloat16;
            case "float16", "fp16", "half" -> torch.ScalarType.Half;
            default -> throw new IllegalArgumentException("dtype must be float32, bfloat16 or float16, got '" + name + "'");
        };
    }

    /**
     * Converts in a scope that frees the weights if building fails half-way. The adapter builds every weight on
     * the host; the constructor copies each to the device, and the host copies go with this scope.
     */
    private static HookedTransformer build(Architecture arch, ModelConfig cfg, WeightSource source, Device device,
                                           torch.ScalarType dtype) throws IOException {
        try (PointerScope scope = new PointerScope()) {
            return new HookedTransformer(cfg, arch.weights(cfg, inDtype(source, dtype.intern())), device, dtype.intern());
        }
    }

    /**
     * {@code source} for a model in {@code dtype}: tensors stored in that dtype are read as they are
     * ({@link WeightSource#loadFor}), and every weight the adapter makes is converted to it in its own scope
     * ({@link WeightSource#keep}), so the host holds the weights once, in the model's dtype, plus one tensor's
     * float32 copy at a time.
     */
    private static WeightSource inDtype(WeightSource source, torch.ScalarType dtype) {
        return new WeightSource() {
            @Override
            public Tensor load(String name, long... shape) throws IOException {
                return source.loadFor(dtype, name, shape);
            }

            @Override
            public boolean has(String name) {
                return source.has(name);
            }

            @Override
            public Tensor loadIfPresent(String name, long... shape) throws IOException {
                Tensor t = source.loadIfPresent(name, shape);
                return t == null ? null : keep(t);
            }

            @Override
            public Tensor keep(Tensor weight) {
                Tensor w = source.keep(weight);
                return w.scalar_type().intern() == dtype ? w : w.to(dtype);
            }
        };
    }

    /**
     * A model with random weights, as Hugging Face initialises GPT-2 (normal(0, initializerRange), zero
     * biases, unit norm gains), seeded, in the tensor names of {@code cfg}'s architecture. Used for benchmarks
     * where no pretrained weights can be downloaded.
     */
    public static HookedTransformer randomInit(ModelConfig cfg, long seed, double initializerRange) {
        return randomInit(cfg, seed, initializerRange, Device.CPU);
    }

    /**
     * {@link #randomInit(ModelConfig, long, double)} on {@code device}: the weights are drawn on the host (the same
     * values on every device for one seed) and copied.
     */
    public static HookedTransformer randomInit(ModelConfig cfg, long seed, double initializerRange, Device device) {
        torch.manual_seed(seed);
        try {
            return fromWeights(cfg, (name, shape) -> {
                if (name.endsWith(".bias")) return torch.zeros(shape);
                if (name.contains("ln_") || name.contains("norm")) return torch.ones(shape);
                return torch.randn(shape).mul(new Scalar(initializerRange));
            }, device);
        } catch (IOException e) {
            throw new AssertionError("random weights do no I/O", e);
        }
    }

    public ModelConfig config() {
        return cfg;
    }

    /** Where the weights live and every pass runs. */
    @Override
    public Device device() {
        return device;
    }

    /** The dtype of the weights and activations. */
    @Override
    public torch.ScalarType dtype() {
        return dtype;
    }

    @Override
    public int dModel() {
        return cfg.dModel();
    }

    @Override
    public int nLayers() {
        return cfg.nLayers();
    }

    @Override
    public boolean supportsBlockPasses() {
        return true;
    }

    /** The residual stream is the embedding plus every block's head and MLP outputs (and the attention biases). */
    @Override
    public boolean residualIsSumOfSources() {
        return true;
    }

    /** {@code blocks.b.ln1_post.hook_scale} of every block with a norm after its attention output (Gemma-2). */
    @Override
    public java.util.List<String> normScaleHooks() {
        java.util.List<String> names = new java.util.ArrayList<>();
        for (int b = 0; b < blocks.length; b++) {
            if (blocks[b].ln1PostW() != null) names.add("blocks." + b + ".ln1_post.hook_scale");
        }
        return java.util.List.copyOf(names);
    }

    @Override
    public Graph graph(boolean factorized, boolean separateQkv, Integer seqLen) {
        return graph(factorized, separateQkv, seqLen, GqaLayout.UNGROUPED);
    }

    /**
     * The graph; with grouped-query attention and {@link GqaLayout#GROUPED}, one K and one V destination per key/value
     * head (factorized graphs with separate Q/K/V only: elsewhere there are no K/V destinations to group).
     */
    @Override
    public Graph graph(boolean factorized, boolean separateQkv, Integer seqLen, GqaLayout layout) {
        if (!factorized) return Graph.transformerUnfactorized(cfg.shape(), seqLen);
        TransformerShape shape = layout == GqaLayout.GROUPED ? cfg.shape().withKvDestHeads(cfg.nKvHeads()) : cfg.shape();
        return Graph.transformerFactorized(shape, separateQkv, seqLen);
    }

    @Override
    public Tensor forward(Tensor input, Tensor attentionMask, HookPoints hooks, OutputSlice slice) {
        return forward(input, attentionMask, null, hooks, slice, null);
    }

    /**
     * The full forward pass.
     *
     * @param tokens        {@code [batch, seq]} int64
     * @param attentionMask {@code [batch, seq]} int64 (1 real, 0 left padding) or null
     * @param cache         a frozen key/value cache of a shared prompt prefix, or null
     * @param hooks         hook callbacks
     * @param slice         output positions
     * @param residPre      if non-null, receives {@code blocks.b.hook_resid_pre} of every block (length nLayers):
     *                      what {@link #forwardFromBlock} needs to restart at a later block
     * @return logits {@code [batch, (seq,) dVocab]}
     */
    @Override
    public Tensor forward(Tensor tokens, Tensor attentionMask, KvCache cache, HookPoints hooks, OutputSlice slice,
                          Tensor[] residPre) {
        return unembed(forwardResidual(tokens, attentionMask, cache, hooks, slice, residPre));
    }

    /**
     * {@link #forward(Tensor, Tensor, KvCache, HookPoints, OutputSlice, Tensor[])} without the unembedding: the final
     * residual stream with {@code slice} applied, {@code [batch, (seq,) dModel]}. {@link #unembed} of it gives the
     * same logits; run_circuits unembeds several circuits' residuals in one product, reading {@code W_U} once.
     */
    public Tensor forwardResidual(Tensor tokens, Tensor attentionMask, KvCache cache, HookPoints hooks,
                                  OutputSlice slice, Tensor[] residPre) {
        return forwardResidual(tokens, attentionMask, cache, hooks, slice, residPre, false);
    }

    /**
     * {@link #forwardResidual(Tensor, Tensor, KvCache, HookPoints, OutputSlice, Tensor[])}; with
     * {@code lastPositionOnly} and {@link OutputSlice#LAST_SEQ}, the last block computes only what the last position
     * needs: keys and values of every position, the rest (queries, attention output, MLP) of the last position only.
     * The hooks of that block then see {@code [batch, 1, ...]} values for everything but the K/V inputs. For callers
     * that read only the output.
     */
    @Override
    public Tensor forwardResidual(Tensor tokens, Tensor attentionMask, KvCache cache, HookPoints hooks,
                                  OutputSlice slice, Tensor[] residPre, boolean lastPositionOnly) {
        ensureOpen();
        long[] shape = tokens.shape();
        if (shape.length != 2) {
            throw new IllegalArgumentException("tokens must be [batch, seq], got " + java.util.Arrays.toString(shape));
        }
        long batch = shape[0], seq = shape[1];
        tokens = onDevice(tokens);
        attentionMask = onDevice(attentionMask);
        int prefix = cache == null ? 0 : cache.prefixLength();
        if (prefix + seq > cfg.nCtx()) {
            throw new IllegalArgumentException("sequence of " + (prefix + seq) + " tokens exceeds n_ctx " + cfg.nCtx());
        }
        Tensor keyMask = fullKeyMask(attentionMask, cache, batch, seq);                 // [batch, prefix+seq] or null
        Tensor positions = positions(keyMask, prefix, seq);                            // [batch, seq] or [seq]
        Tensor resid = embed(tokens, positions, keyMask, prefix);                      // [batch, seq, dModel]
        return slice.apply(runBlocksResid(0, resid, keyMask, positions, cache, hooks, residPre,
            lastPositionOnly && slice == OutputSlice.LAST_SEQ));
    }

    /**
     * Token embedding plus, for learned positions, the position embedding: {@code [batch, seq, dModel]}. Padded
     * positions get a zero position embedding, as TransformerLens gives them (they enter per-position dataset means).
     *
     * @param keyMask [batch, prefix+seq] 1 for real tokens, or null without padding
     */
    private Tensor embed(Tensor tokens, Tensor positions, Tensor keyMask, int prefix) {
        long batch = tokens.size(0), seq = tokens.size(1);
        Tensor embed = wE.index_select(0, tokens.reshape(-1)).reshape(batch, seq, cfg.dModel());
        if (cfg.extras().embedScale()) {
            // Gemma: times sqrt(dModel) rounded to the activations' dtype first, as Hugging Face's normalizer is
            embed = embed.mul(torch.scalar_tensor(new Scalar(Math.sqrt(cfg.dModel())), options(embed.scalar_type())));
        }
        if (wPos == null) return embed;
        if (positions.dim() == 1) {
            return embed.add(wPos.index_select(0, positions).reshape(1, seq, cfg.dModel()));
        }
        Tensor real = keyMask.narrow(1, prefix, seq).to(wPos.scalar_type()).unsqueeze(2);   // [batch, seq, 1]
        return embed.add(wPos.index_select(0, positions.reshape(-1)).reshape(batch, seq, cfg.dModel()).mul(real));
    }

    /**
     * Restarts a forward pass at block {@code startBlock} from its cached {@code hook_resid_pre}: every
     * earlier activation is unchanged when only later destinations are patched (ACDC's speed-up).
     */
    @Override
    public Tensor forwardFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                   HookPoints hooks, OutputSlice slice) {
        return unembed(residualFromBlock(startBlock, residPre, attentionMask, cache, hooks, slice, false));
    }

    /**
     * {@link #forwardFromBlock} without the unembedding: the final residual stream with {@code slice} applied,
     * {@code [batch, (seq,) dModel]}. With {@link #unembed} it gives the same logits; ACDC unembeds many trials
     * in one matrix product.
     */
    public Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                    HookPoints hooks, OutputSlice slice) {
        return residualFromBlock(startBlock, residPre, attentionMask, cache, hooks, slice, false);
    }

    /** {@link #residualFromBlock(int, Tensor, Tensor, KvCache, HookPoints, OutputSlice)}, {@code lastPositionOnly} as in {@link #forwardResidual}. */
    @Override
    public Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                    HookPoints hooks, OutputSlice slice, boolean lastPositionOnly) {
        ensureOpen();
        if (startBlock < 0 || startBlock >= cfg.nLayers()) {
            throw new IllegalArgumentException("startBlock " + startBlock + " outside [0, " + cfg.nLayers() + ")");
        }
        long[] shape = residPre.shape();
        residPre = onDevice(residPre);
        Tensor keyMask = fullKeyMask(onDevice(attentionMask), cache, shape[0], shape[1]);
        Tensor positions = rotaryFreq == null ? null
            : positions(keyMask, cache == null ? 0 : cache.prefixLength(), shape[1]);
        return slice.apply(runBlocksResid(startBlock, residPre, keyMask, positions, cache, hooks, null,
            lastPositionOnly && slice == OutputSlice.LAST_SEQ));
    }

    /** The final norm then {@code W_U}: the logits {@code [..., dVocab]} of a final residual stream {@code [..., dModel]}. */
    @Override
    public Tensor unembed(Tensor resid) {
        ensureOpen();
        Tensor logits = torch.matmul(norm(resid, lnFinalW, lnFinalB), wU);
        if (bU != null) logits = logits.add(bU);
        return cfg.extras().finalSoftcap() > 0 ? softcap(logits, cfg.extras().finalSoftcap()) : logits;
    }

    @Override
    public Tensor[] affineUnembedding() {
        ensureOpen();
        return cfg.extras().finalSoftcap() > 0 ? null : new Tensor[] {wU, bU};
    }

    @Override
    public Tensor finalNorm(Tensor resid) {
        ensureOpen();
        return norm(resid, lnFinalW, lnFinalB);
    }

    /** Gemma-2's soft cap {@code cap · tanh(x / cap)}. */
    private static Tensor softcap(Tensor x, double cap) {
        return x.div(new Scalar(cap)).tanh().mul(new Scalar(cap));
    }

    /** Computes the frozen key/value cache of a prompt prefix ({@code [batch, prefix]} tokens). */
    @Override
    public KvCache buildKvCache(Tensor prefixTokens, Tensor prefixMask) {
        ensureOpen();
        long[] shape = prefixTokens.shape();
        prefixTokens = onDevice(prefixTokens);
        prefixMask = onDevice(prefixMask);
        Tensor[] keys = new Tensor[cfg.nLayers()];
        Tensor[] values = new Tensor[cfg.nLayers()];
        try (var guard = new org.bytedeco.pytorch.NoGradGuard()) {
            Tensor keyMask = prefixMask;
            Tensor positions = positions(keyMask, 0, shape[1]);
            Tensor resid = embed(prefixTokens, positions, keyMask, 0);
            for (int b = 0; b < cfg.nLayers(); b++) {
                Block w = blocks[b];
                Tensor ln = norm(resid, w.ln1W(), w.ln1B());
                keys[b] = rotate(ungroup(projectShared(ln, w.wKFlat(), w.bK())), positions);
                values[b] = ungroup(projectShared(ln, w.wVFlat(), w.bV()));
                resid = blockForward(b, resid, keyMask, positions, null, HookPoints.NONE, keys[b], values[b], false);
            }
        }
        return KvCache.of(keys, values, prefixMask, shape[0], shape[1]);
    }

    private Tensor runBlocksResid(int start, Tensor resid, Tensor keyMask, Tensor positions, KvCache cache,
                                  HookPoints hooks, Tensor[] residPre, boolean lastPositionOnly) {
        for (int b = start; b < cfg.nLayers(); b++) {
            resid = hooks.apply("blocks." + b + ".hook_resid_pre", resid);
            if (residPre != null) residPre[b] = resid;
            resid = blockForward(b, resid, keyMask, positions, cache, hooks, null, null,
                lastPositionOnly && b == cfg.nLayers() - 1);
        }
        return resid;
    }

    /**
     * One block. When {@code cacheK}/{@code cacheV} are given, the block is being run to fill a cache and
     * uses those (already computed, rotated and ungrouped) keys and values.
     *
     * @param positions the position ids of the block's positions ({@code [seq]} or {@code [batch, seq]}), read by
     *                  rotary models only
     */
    private Tensor blockForward(int b, Tensor residPre, Tensor keyMask, Tensor positions, KvCache cache,
                                HookPoints hooks, Tensor cacheK, Tensor cacheV, boolean lastPositionOnly) {
        Block w = blocks[b];
        String p = "blocks." + b + ".";
        Tensor q, k, v;
        Tensor attnIn = hooks.apply(p + "hook_attn_in", residPre);                    // [b, s, (h,) d]
        HeadInputs qIn, kIn, vIn;
        if (attnIn.dim() == 3) {
            // lastPositionOnly: the query (and everything after attention) of the last position, keys and values of all
            long seq = attnIn.size(1);
            Tensor queries = lastPositionOnly ? attnIn.narrow(1, seq - 1, 1) : attnIn;
            qIn = hooks.headInputs(p + "hook_q_input", queries);
            kIn = hooks.headInputs(p + "hook_k_input", attnIn);
            vIn = hooks.headInputs(p + "hook_v_input", attnIn);
            if (lastPositionOnly) residPre = residPre.narrow(1, seq - 1, 1);        // what the residual adds read
        } else {
            qIn = HeadInputs.of(hooks.apply(p + "hook_q_input", attnIn));
            kIn = HeadInputs.of(hooks.apply(p + "hook_k_input", attnIn));
            vIn = HeadInputs.of(hooks.apply(p + "hook_v_input", attnIn));
        }
        q = project(qIn, w.ln1W(), w.ln1B(), w.wQ(), w.wQFlat(), w.bQ(), false);      // [batch, seq, nHeads, dHead]
        k = cacheK != null ? cacheK : project(kIn, w.ln1W(), w.ln1B(), w.wK(), w.wKFlat(), w.bK(), true);
        v = cacheV != null ? cacheV : project(vIn, w.ln1W(), w.ln1B(), w.wV(), w.wVFlat(), w.bV(), true);
        if (attnIn.dim() == 3) {
            // projections of a shared input that a hook asked for (headInputs): hooks may keep them for their gradient
            if (qIn.own() == null) hooks.sharedHeadProjection(p + "hook_q_input", q);
            if (cacheK == null && kIn.own() == null) hooks.sharedHeadProjection(p + "hook_k_input", k);
            if (cacheV == null && vIn.own() == null) hooks.sharedHeadProjection(p + "hook_v_input", v);
        }
        if (rotaryFreq != null) {
            // queries of a trimmed last block are the last positions
            long qSeq = q.size(1), allSeq = positions.size(positions.dim() - 1);
            q = rotate(q, qSeq == allSeq ? positions : positions.narrow(positions.dim() - 1, allSeq - qSeq, qSeq));
            if (cacheK == null) k = rotate(k, positions);
        }
        if (cache != null) {
            k = torch.cat(new TensorVector(cache.keys(b), k), 1);                      // [batch, prefix+seq, nHeads, dHead]
            v = torch.cat(new TensorVector(cache.values(b), v), 1);
        }
        Tensor z = attention(q, k, v, keyMask, hooks, p, b);                                    // [batch, seq, nHeads, dHead]
        Tensor result = headResults(z, w.wO());                                       // [batch, seq, nHeads, dModel]
        if (w.ln1PostW() != null) result = postNormPerHead(result, w.ln1PostW(), hooks, p);
        result = hooks.apply(p + "attn.hook_result", result);
        Tensor attnOut = result.sum(2);                                               // [batch, seq, dModel]
        if (w.bO() != null) attnOut = attnOut.add(w.bO());
        if (cfg.attnOnly()) {
            return hooks.apply(p + "hook_resid_post", residPre.add(attnOut));
        }
        Tensor residMid;
        Tensor mlpIn;
        if (cfg.parallelAttnMlp()) {
            residMid = residPre;
            mlpIn = hooks.apply(p + "hook_mlp_in", residPre);
        } else {
            residMid = hooks.apply(p + "hook_resid_mid", residPre.add(attnOut));
            mlpIn = hooks.apply(p + "hook_mlp_in", residMid);
        }
        Tensor mlpOut = mlp(norm(mlpIn, w.ln2W(), w.ln2B()), w);                      // [batch, seq, dModel]
        if (w.ln2PostW() != null) mlpOut = norm(mlpOut, w.ln2PostW(), null);
        mlpOut = hooks.apply(p + "hook_mlp_out", mlpOut);
        Tensor residPost = cfg.parallelAttnMlp() ? residPre.add(attnOut).add(mlpOut) : residMid.add(mlpOut);
        return hooks.apply(p + "hook_resid_post", residPost);
    }

    /**
     * Gemma-2's norm of the attention output, {@code x / s · g} with {@code x = Σ_h result_h} and
     * {@code s = sqrt(mean(x²) + eps)}, applied to every head's output {@code result_h / s · g} so that the heads stay
     * additive sources: their sum is the normed attention output. The scale {@code s [batch, seq, 1]} passes the hook
     * point {@code blocks.b.ln1_post.hook_scale} and is a constant of the pass (detached from autograd): on an
     * unpatched run it is that run's own scale, and gradients (EAP) see the norm linearised at it.
     */
    private Tensor postNormPerHead(Tensor result, Tensor gain, HookPoints hooks, String blockPrefix) {
        Tensor summed = result.sum(2);                                                // [batch, seq, dModel]
        Tensor scale = rmsScale(summed).detach();                                     // [batch, seq, 1]
        scale = hooks.apply(blockPrefix + "ln1_post.hook_scale", scale);
        return result.div(scale.unsqueeze(2)).mul(gain);                              // [batch, seq, nHeads, dModel]
    }

    /** {@code sqrt(mean(x²) + eps)} over the last dimension, kept: RMSNorm's divisor. */
    private Tensor rmsScale(Tensor x) {
        return x.pow(new Scalar(2)).mean(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional())
            .add(new Scalar(cfg.lnEps())).sqrt();
    }

    /**
     * The MLP of a normalised input {@code [batch, seq, dModel]}: {@code act(x·W_in + b_in)·W_out + b_out}, or for a
     * gated MLP {@code (act(x·W_gate) ⊙ (x·W_in) + b_in)·W_out + b_out}, as TransformerLens's {@code GatedMLP}.
     */
    private Tensor mlp(Tensor x, Block w) {
        Tensor hidden;                                                                // [batch, seq, dMlp]
        if (cfg.gatedMlp()) {
            hidden = activation(torch.matmul(x, w.wGate())).mul(torch.matmul(x, w.wIn()));
            if (w.bIn() != null) hidden = hidden.add(w.bIn());
        } else {
            hidden = activation(linear(x, w.wIn(), w.bIn()));
        }
        return linear(hidden, w.wOut(), w.bOut());
    }

    /**
     * The first norm then the Q, K or V projection of every head: {@code [batch, seq, nHeads, dHead]}. A shared input
     * is projected for all heads in one product; heads with their own input are projected per head and, when the
     * others share one, written over the shared result. For K and V ({@code keyValue}) of a grouped-query model the
     * weights are those of the key/value heads: a shared input is projected once per key/value head and the result
     * repeated for its query heads, while an own input of query head h is projected by the weights of key/value head
     * {@code h / groupSize}.
     */
    private Tensor project(HeadInputs in, Tensor lnW, Tensor lnB, Tensor wHeads, Tensor wFlat, Tensor bias,
                           boolean keyValue) {
        boolean gqa = keyValue && kvHeadOfHead != null;
        if (in.own() == null) {
            Tensor all = projectShared(norm(in.shared(), lnW, lnB), wFlat, bias);   // [batch, seq, n, dHead]
            return gqa ? ungroup(all) : all;
        }
        // a grouped-layout destination gives one input per key/value head: project those, then repeat them
        boolean perKvHead = gqa && in.nHeads() == cfg.nKvHeads();
        Tensor heads = in.heads();                                                    // [p] or null: every head
        Tensor rows = gqa && !perKvHead ? (heads == null ? kvHeadOfHead : kvHeadOfHead.index_select(0, heads)) : heads;
        Tensor w = rows == null ? wHeads : wHeads.index_select(0, rows);             // [p, dModel, dHead]
        Tensor b = rows == null || bias == null ? bias : bias.index_select(0, rows);
        Tensor own = projectPerHead(norm(in.own(), lnW, lnB), w, b);                 // [batch, seq, p, dHead]
        if (in.shared() == null) return perKvHead ? ungroup(own) : own;
        Tensor all = projectShared(norm(in.shared(), lnW, lnB), wFlat, bias);        // [batch, seq, nKv|nHeads, dHead]
        if (perKvHead) return ungroup(all.index_copy(2, heads, own));
        return (gqa ? ungroup(all) : all).index_copy(2, heads, own);
    }

    @Override
    public boolean supportsHeadInputGradients() {
        return kvHeadOfHead == null;
    }

    /**
     * {@inheritDoc} Head h's input gradient is {@code Jᵀ (dP_h · W[h]ᵀ)}, J the first norm's Jacobian at the shared
     * input: for LayerNorm {@code σ⁻¹ (v − mean(v) − x̂·mean(v·x̂))}, for RMSNorm {@code s⁻¹ (v − ŷ·mean(v·ŷ))}, with
     * {@code v = u·w} the gradient times the norm's gain. Computed for all the hooks' heads at once, with one pass over
     * the {@code [heads, tokens, dModel]} result besides the product that forms it: the gain, {@code 1/σ} and (LayerNorm)
     * the centring are folded into the weights and the projection gradients, {@code mean(v·x̂)} comes from the
     * forward's {@code projections}, and one in-place update finishes. The weight-only operands (the gain-scaled,
     * centred weights and each projection's constant offset) are made once per block and list of hooks and kept
     * with the model ({@link #headGradientWeights}).
     */
    @Override
    public Tensor headInputGradients(java.util.List<String> hookNames, Tensor sharedInput,
                                     java.util.List<Tensor> projections, java.util.List<Tensor> projectionGrads) {
        ensureOpen();
        if (!supportsHeadInputGradients()) {
            throw new UnsupportedOperationException("per-head input gradients of a grouped-query-attention model");
        }
        if (hookNames.isEmpty() || hookNames.size() != projectionGrads.size() || hookNames.size() != projections.size()) {
            throw new IllegalArgumentException("headInputGradients: " + hookNames.size() + " hooks, "
                + projections.size() + " projections and " + projectionGrads.size() + " gradients");
        }
        int block = -1;
        String[] kinds = new String[hookNames.size()];
        for (int i = 0; i < kinds.length; i++) {
            String name = hookNames.get(i);
            String[] parts = name.split("\\.");
            int b = parts.length == 3 && parts[0].equals("blocks") ? Integer.parseInt(parts[1]) : -1;
            if (b < 0 || b >= cfg.nLayers() || (block >= 0 && b != block)) {
                throw new IllegalArgumentException("headInputGradients: " + name + " is not a Q/K/V input hook of "
                    + (block >= 0 ? "block " + block : "a block of this model"));
            }
            if (!parts[2].equals("hook_q_input") && !parts[2].equals("hook_k_input") && !parts[2].equals("hook_v_input")) {
                throw new IllegalArgumentException("headInputGradients: not a Q, K or V input hook: " + name);
            }
            block = b;
            kinds[i] = parts[2];
        }
        HeadGradientWeights constant = headGradientWeights(block, kinds);
        Tensor[] grads = new Tensor[kinds.length];
        Tensor[] offsets = new Tensor[kinds.length];   // per head: (γ ⊙ x̂)·W_h = projection − offset
        long tokens = sharedInput.numel() / cfg.dModel();
        for (int i = 0; i < kinds.length; i++) {
            Tensor g = projectionGrads.get(i);                                        // [batch, seq, nHeads, dHead]
            grads[i] = g.permute(2, 0, 1, 3).reshape(g.size(2), tokens, cfg.dHead());   // [nHeads, tokens, dHead]
            Tensor pr = projections.get(i);
            pr = pr.permute(2, 0, 1, 3).reshape(pr.size(2), tokens, cfg.dHead());
            Tensor offset = constant.offsets()[i];                                    // [nHeads, dHead] or null
            offsets[i] = offset == null ? pr : pr.sub(offset.unsqueeze(1));           // [nHeads, tokens, dHead]
        }
        long[] last = {-1};
        var none = new org.bytedeco.pytorch.ScalarTypeOptional();
        Tensor y = sharedInput.reshape(tokens, cfg.dModel());
        Tensor normed, inverse;                                                       // x̂ or ŷ [tokens, dModel]; 1/σ or 1/s [tokens, 1]
        boolean centre = cfg.norm() == ModelConfig.Norm.LAYER_NORM;
        if (centre) {
            Tensor centred = y.sub(y.mean(last, true, none));
            inverse = centred.pow(new Scalar(2)).mean(last, true, none).add(new Scalar(cfg.lnEps())).rsqrt();
            normed = centred.mul(inverse);
        } else {
            inverse = rmsScale(y).reciprocal();
            normed = y.mul(inverse);
        }
        // The norm's backward of u = (dP_h·W_hᵀ) ⊙ γ at x is (u − mean(u) − x̂ · ⟨u, x̂⟩/D) / σ (RMSNorm: no mean term).
        // Both terms come without a pass over [R, tokens, dModel]: mean(u) is dP_h · mean_k(γ_k W_h[k]), so centring
        // the gain-scaled weights over dModel gives u − mean(u) from the product itself; and ⟨u, x̂⟩ = dP_h ·
        // ((γ ⊙ x̂)·W_h), where (γ ⊙ x̂)·W_h is the forward's own projection less its offsets (above). What remains is
        // one product and one update of its result.
        Tensor dp = (grads.length == 1 ? grads[0] : torch.cat(new TensorVector(grads), 0)).mul(inverse);   // [R, tokens, dHead]
        Tensor v = torch.bmm(dp, constant.weights().transpose(1, 2));                 // [R, tokens, dModel]: (u − mean u) / σ
        Tensor projected = offsets.length == 1 ? offsets[0] : torch.cat(new TensorVector(offsets), 0);   // [R, tokens, dHead]
        Tensor vx = dp.mul(projected).sum(last, true, none).div(new Scalar((double) cfg.dModel()));   // ⟨u, x̂⟩ / (σ D)
        v.addcmul_(normed, vx, new Scalar(-1));
        return v;
    }

    /**
     * The weight-only operands of {@link #headInputGradients} for one block and list of Q/K/V hooks: {@code weights}
     * {@code [R, dModel, dHead]}, the hooks' weights concatenated over heads with the first norm's gain folded in and
     * (LayerNorm) centred over dModel; per hook the constant part of its projection, {@code b_h + β·W_h}
     * {@code [nHeads, dHead]} (null when both are absent).
     */
    private record HeadGradientWeights(Tensor weights, Tensor[] offsets) {}

    /**
     * Per block and list of hook kinds: made on first use, owned by the model (they depend on its weights only, which
     * never change). Rebuilding them per call cost 2–4 ms per block of GPT-2 small (three passes over the block's
     * 7 MB of Q/K/V weights, and the β·W products), 0.5–0.9 s of a W2 run. Holds one more copy of the Q/K/V weights
     * of the blocks it has served.
     */
    private final java.util.concurrent.ConcurrentHashMap<String, HeadGradientWeights> headGradientWeights =
        new java.util.concurrent.ConcurrentHashMap<>();

    private HeadGradientWeights headGradientWeights(int block, String[] kinds) {
        return headGradientWeights.computeIfAbsent(block + ":" + String.join(",", kinds), key -> {
            try (PointerScope scope = new PointerScope(); org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
                Block blk = blocks[block];
                Tensor[] weights = new Tensor[kinds.length];
                Tensor[] offsets = new Tensor[kinds.length];
                for (int i = 0; i < kinds.length; i++) {
                    Tensor[] weightAndBias = switch (kinds[i]) {
                        case "hook_q_input" -> new Tensor[] {blk.wQ(), blk.bQ()};
                        case "hook_k_input" -> new Tensor[] {blk.wK(), blk.bK()};
                        case "hook_v_input" -> new Tensor[] {blk.wV(), blk.bV()};
                        default -> throw new IllegalArgumentException("not a Q, K or V input hook: " + kinds[i]);
                    };
                    weights[i] = weightAndBias[0];
                    // the projection is norm(x)·W_h + b_h with norm(x) = γ ⊙ x̂ + β, so (γ ⊙ x̂)·W_h = projection − b_h − β·W_h
                    Tensor offset = weightAndBias[1];
                    if (blk.ln1B() != null) {
                        Tensor betaW = torch.matmul(blk.ln1B(), weights[i]);                  // [nHeads, dHead]
                        offset = offset == null ? betaW : offset.add(betaW);
                    }
                    offsets[i] = offset == null ? null : owned.adopt(offset.contiguous());
                }
                var none = new org.bytedeco.pytorch.ScalarTypeOptional();
                Tensor wAll = (weights.length == 1 ? weights[0] : torch.cat(new TensorVector(weights), 0))
                    .mul(blk.ln1W().unsqueeze(-1));                                       // gain folded in
                if (cfg.norm() == ModelConfig.Norm.LAYER_NORM) wAll = wAll.sub(wAll.mean(new long[] {1}, true, none));
                return new HeadGradientWeights(owned.adopt(wAll.contiguous()), offsets);
            }
        });
    }

    /** {@code [batch, seq, nKvHeads, dHead]} repeated to {@code [batch, seq, nHeads, dHead]} (no copy without GQA). */
    private Tensor ungroup(Tensor kv) {
        return kvHeadOfHead == null ? kv : kv.repeat_interleave(cfg.groupSize(), new org.bytedeco.pytorch.LongOptional(2),
            new org.bytedeco.pytorch.LongOptional());
    }

    /** Per-head projections of normalised per-head inputs {@code [b,s,p,d]} with weights {@code [p, d, dHead]}. */
    private Tensor projectPerHead(Tensor ln, Tensor wHeads, Tensor bias) {
        long[] s = ln.shape();                                                        // [batch, seq, p, dModel]
        long h = s[2];
        Tensor x = ln.permute(2, 0, 1, 3).reshape(h, s[0] * s[1], s[3]);            // [p, batch*seq, dModel]
        Tensor y = torch.bmm(x, wHeads);                                              // [p, batch*seq, dHead]
        y = y.reshape(h, s[0], s[1], cfg.dHead()).permute(1, 2, 0, 3);               // [batch, seq, p, dHead]
        return bias == null ? y : y.add(bias);
    }

    /** A shared normalised input {@code [batch, seq, dModel]} through {@code wFlat [dModel, n*dHead]}: {@code [batch, seq, n, dHead]}. */
    private Tensor projectShared(Tensor ln, Tensor wFlat, Tensor bias) {
        long[] s = ln.shape();                                                        // [batch, seq, dModel]
        Tensor y = torch.matmul(ln, wFlat).reshape(s[0], s[1], -1, cfg.dHead());
        return bias == null ? y : y.add(bias);
    }

    /**
     * Rotary position embedding of queries or keys {@code [batch, seq, nHeads, dHead]} at {@code positions}
     * ({@code [seq]} or {@code [batch, seq]}), as TransformerLens's {@code apply_rotary} computes it: the first
     * {@code rotaryDim} dimensions become {@code x·cos + rotate_half(x)·sin}, the rest pass through.
     */
    private Tensor rotate(Tensor x, Tensor positions) {
        if (rotaryFreq == null) return x;
        int rot = (int) rotaryFreq.size(0), half = rot / 2;
        Tensor angles = positions.to(torch.ScalarType.Float).unsqueeze(-1).div(rotaryFreq);   // [(batch,) seq, rot]
        Tensor cos = angles.cos().unsqueeze(-2), sin = angles.sin().unsqueeze(-2);            // [(batch,) seq, 1, rot]
        if (x.scalar_type().intern() != torch.ScalarType.Float) {                              // a 16-bit model stays 16-bit
            cos = cos.to(x.scalar_type());
            sin = sin.to(x.scalar_type());
        }
        Tensor xRot = rot == cfg.dHead() ? x : x.narrow(3, 0, rot);
        Tensor flipped = torch.cat(new TensorVector(xRot.narrow(3, half, half).neg(), xRot.narrow(3, 0, half)), 3);
        Tensor rotated = xRot.mul(cos).add(flipped.mul(sin));
        if (rot == cfg.dHead()) return rotated;
        return torch.cat(new TensorVector(rotated, x.narrow(3, rot, cfg.dHead() - rot)), 3);
    }

    /**
     * Scaled dot-product attention with causal and padding masks; NaN rows (all keys masked) become 0. The
     * pattern passes TransformerLens's {@code attn.hook_pattern} ({@code [batch, nHeads, seq, prefix+seq]}). When the
     * hooks do not observe the pattern, libtorch's fused {@code scaled_dot_product_attention} computes the same
     * output without forming it (about 0.6 instead of 1.5 ms per GPT-2-small block at 16 × 13 tokens).
     */
    private Tensor attention(Tensor q, Tensor k, Tensor v, Tensor keyMask, HookPoints hooks, String blockPrefix,
                             int layer) {
        long[] qs = q.shape();
        long seq = qs[1], total = k.shape()[1], prefix = total - seq;
        ModelConfig.Extras extras = cfg.extras();
        // causal: query i (absolute position prefix+i) sees keys j ≤ prefix+i
        Tensor allowed = torch.ones(new long[] {seq, total}, options(torch.ScalarType.Float)).tril(prefix)
            .to(torch.ScalarType.Bool);                                                 // [seq, total]
        if (extras.windowed(layer)) {
            // sliding window: and keys j > prefix+i − window (itself and the window − 1 before it), as Hugging Face.
            // Left padding sits before the real tokens, so distances in the padded sequence are distances in positions.
            Tensor recent = torch.ones(new long[] {seq, total}, options(torch.ScalarType.Float))
                .triu(prefix - extras.slidingWindow() + 1).to(torch.ScalarType.Bool);
            allowed = allowed.logical_and(recent);
        }
        double divisor = Math.sqrt(extras.queryScale() > 0 ? extras.queryScale() : cfg.dHead());
        if (keyMask != null) {
            Tensor keys = keyMask.to(torch.ScalarType.Bool).unsqueeze(1).unsqueeze(1);       // [batch, 1, 1, total]
            allowed = allowed.unsqueeze(0).unsqueeze(0).logical_and(keys);                    // [batch, 1, seq, total]
        }
        Tensor qh = q.permute(0, 2, 1, 3);                                            // [batch, nHeads, seq, dHead]
        if (!hooks.observes(blockPrefix + "attn.hook_pattern") && extras.attnSoftcap() == 0) {
            Tensor z = torch.scaled_dot_product_attention(qh, k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3),
                new TensorOptional(allowed), 0.0, false, extras.queryScale() > 0
                    ? new org.bytedeco.pytorch.DoubleOptional(1.0 / divisor) : new org.bytedeco.pytorch.DoubleOptional(),
                false);
            if (keyMask != null) {
                // rows with every key masked are 0, as the pattern path's nan_to_num makes them (libtorch 2.13's CPU
                // kernel already gives 0 there, HookedTransformerGoldenTest checks it; this keeps it whatever kernel runs)
                z = z.masked_fill(allowed.logical_not().all(-1, true), new Scalar(0.0));
            }
            return z.permute(0, 2, 1, 3);                                             // [batch, seq, nHeads, dHead]
        }
        Tensor kh = k.permute(0, 2, 3, 1);                                            // [batch, nHeads, dHead, total]
        Tensor scores = torch.matmul(qh, kh).div(new Scalar(divisor));               // [batch, nHeads, seq, total]
        if (extras.attnSoftcap() > 0) scores = softcap(scores, extras.attnSoftcap());
        scores = scores.masked_fill(allowed.logical_not(), new Scalar(Double.NEGATIVE_INFINITY));
        Tensor pattern = scores.softmax(-1);
        if (keyMask != null) pattern = torch.nan_to_num(pattern, new org.bytedeco.pytorch.DoubleOptional(0.0),
            new org.bytedeco.pytorch.DoubleOptional(), new org.bytedeco.pytorch.DoubleOptional());
        pattern = hooks.apply(blockPrefix + "attn.hook_pattern", pattern);              // [batch, nHeads, seq, total]
        Tensor z = torch.matmul(pattern, v.permute(0, 2, 1, 3));                      // [batch, nHeads, seq, dHead]
        return z.permute(0, 2, 1, 3);                                                 // [batch, seq, nHeads, dHead]
    }

    /** Per-head attention output {@code z_h · W_O[h]}, TransformerLens's {@code hook_result}. */
    private Tensor headResults(Tensor z, Tensor wO) {
        long[] s = z.shape();                                                         // [batch, seq, nHeads, dHead]
        Tensor x = z.permute(2, 0, 1, 3).reshape(s[2], s[0] * s[1], s[3]);           // [nHeads, batch*seq, dHead]
        Tensor y = torch.bmm(x, wO);                                                  // [nHeads, batch*seq, dModel]
        return y.reshape(s[2], s[0], s[1], cfg.dModel()).permute(1, 2, 0, 3);        // [batch, seq, nHeads, dModel]
    }

    /**
     * {@code x · w + b} for {@code x [..., in]} and {@code w [in, out]}: one product with the bias added inside it
     * ({@code addmm}) rather than a second pass over the output.
     */
    private static Tensor linear(Tensor x, Tensor w, Tensor b) {
        if (b == null) return torch.matmul(x, w);
        long[] s = x.shape();
        Tensor x2 = x.reshape(-1, s[s.length - 1]);
        long[] outShape = s.clone();
        outShape[s.length - 1] = w.size(1);
        return torch.addmm(b, x2, w).reshape(outShape);
    }

    private Tensor activation(Tensor x) {
        return switch (cfg.actFn()) {
            case GELU_NEW -> torch.gelu(x, "tanh");
            case GELU -> torch.gelu(x);
            case RELU -> x.relu();
            case SILU -> torch.silu(x);
        };
    }

    /** The configured norm of {@code x [..., dModel]} with gain {@code w} and (LayerNorm only) bias {@code b}. */
    private Tensor norm(Tensor x, Tensor w, Tensor b) {
        if (cfg.norm() == ModelConfig.Norm.LAYER_NORM) {
            return torch.layer_norm(x, new long[] {cfg.dModel()}, new TensorOptional(w),
                b == null ? new TensorOptional() : new TensorOptional(b), cfg.lnEps(), false);
        }
        // TransformerLens's RMSNorm: x / sqrt(mean(x²) + eps) · w, written as it does so the floats agree
        return x.div(rmsScale(x)).mul(w);
    }

    /** The key mask over prefix and current positions, or null when nothing is padded. */
    private Tensor fullKeyMask(Tensor attentionMask, KvCache cache, long batch, long seq) {
        Tensor prefixMask = cache == null ? null : cache.prefixMask();
        if (attentionMask == null && prefixMask == null) return null;
        Tensor current = attentionMask != null ? attentionMask : torch.ones(new long[] {batch, seq},
            options(torch.ScalarType.Long));
        if (cache == null) return current;
        Tensor pm = prefixMask != null ? prefixMask : torch.ones(new long[] {batch, cache.prefixLength()},
            options(torch.ScalarType.Long));
        return torch.cat(new TensorVector(pm, current), 1);
    }

    /**
     * The learned position embeddings of the current {@code seq} positions: {@code [1, seq, dModel]} without padding,
     * {@code [batch, seq, dModel]} with it. Padded positions get 0, not the embedding of position 0, as TransformerLens
     * sets them: nothing attends to them, but their source outputs enter per-position means over a data set
     * (TOKENWISE_MEAN_*, BATCH_*_MEAN) at positions where other prompts are real (docs/quirks.md).
     */
    private Tensor positionEmbedding(Tensor keyMask, int prefix, long batch, long seq) {
        Tensor positions = positions(keyMask, prefix, seq);                            // [batch, seq] or [seq]
        if (positions.dim() == 1) {
            return wPos.index_select(0, positions).reshape(1, seq, cfg.dModel());
        }
        Tensor real = keyMask.narrow(1, prefix, seq).to(wPos.scalar_type()).unsqueeze(2);   // [batch, seq, 1]
        return wPos.index_select(0, positions.reshape(-1)).reshape(batch, seq, cfg.dModel()).mul(real);
    }

    /**
     * Position ids: {@code 0..seq-1} (shifted by a cache prefix) without padding; with left padding,
     * the running count of real tokens minus one (clamped at 0), as TransformerLens computes them.
     */
    private Tensor positions(Tensor keyMask, int prefix, long seq) {
        if (keyMask == null) {
            return torch.arange(new Scalar(prefix), new Scalar(prefix + seq), options(torch.ScalarType.Long));
        }
        Tensor pos = keyMask.cumsum(1).sub(new Scalar(1)).clamp_min(new Scalar(0));  // [batch, prefix+seq]
        return pos.narrow(1, prefix, seq).contiguous();
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("HookedTransformer is closed");
    }

    @Override
    public void close() {
        closed = true;
        owned.close();
    }
}
