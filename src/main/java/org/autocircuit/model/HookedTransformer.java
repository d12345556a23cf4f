package org.autocircuit.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.graph.Graph;
import org.autocircuit.util.OwnedTensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * A GPT-2-architecture transformer over libtorch ops with TransformerLens's hook points and weight
 * layout ({@code W_Q [nHeads, dModel, dHead]}, {@code W_O [nHeads, dHead, dModel]}, ...).
 *
 * <p>It follows {@code HookedTransformer} with {@code use_attn_result}, {@code use_split_qkv_input}
 * (or {@code use_attn_in}) and {@code use_hook_mlp_in} on, and no weight processing
 * ({@code from_pretrained_no_processing}): learned positions, pre-LayerNorm, {@code gelu_new}, and the
 * attention output written per head ({@code hook_result}, without {@code b_O}) and then summed.
 * Per-head Q/K/V inputs go through {@code ln1} separately for each head copy, because patching can make
 * the copies differ. Left padding is handled as TransformerLens does: masked keys, positions shifted so
 * that the first real token is position 0, a zero position embedding at padded positions, and fully masked rows set
 * to 0 instead of NaN.
 *
 * <p>Ownership: the model owns its weights ({@link #close()} frees them); every forward pass creates its
 * tensors in the caller's current {@link PointerScope}.
 */
public final class HookedTransformer implements HookedModel {
    private final ModelConfig cfg;
    private final OwnedTensors owned = new OwnedTensors();
    private final Tensor wE;        // [dVocab, dModel]
    private final Tensor wPos;      // [nCtx, dModel]
    private final Block[] blocks;
    private final Tensor lnFinalW;  // [dModel]
    private final Tensor lnFinalB;  // [dModel]
    private final Tensor wU;        // [dModel, dVocab]
    private final Tensor bU;        // [dVocab] or null when zero
    private volatile boolean closed;

    /** The weights of one block, in TransformerLens layout. */
    private record Block(
            Tensor ln1W, Tensor ln1B,
            Tensor wQ, Tensor wK, Tensor wV,       // [nHeads, dModel, dHead]
            Tensor wQFlat, Tensor wKFlat, Tensor wVFlat, // [dModel, nHeads*dHead], for the shared-input fast path
            Tensor bQ, Tensor bK, Tensor bV,       // [nHeads, dHead]
            Tensor wO, Tensor bO,                  // [nHeads, dHead, dModel], [dModel]
            Tensor ln2W, Tensor ln2B,
            Tensor wIn, Tensor bIn,                // [dModel, dMlp], [dMlp]
            Tensor wOut, Tensor bOut) {}           // [dMlp, dModel], [dModel]

    /** Supplies a named weight of a given shape, in the source's own naming (see the factories). */
    @FunctionalInterface
    public interface WeightSource {
        Tensor load(String name, long... shape) throws IOException;

        /** An optional tensor (the unembedding bias, which GPT-2 checkpoints lack): null when the source has none. */
        default Tensor loadIfPresent(String name, long... shape) throws IOException {
            return null;
        }
    }

    private HookedTransformer(ModelConfig cfg, WeightSource hf) throws IOException {
        this.cfg = cfg;
        int d = cfg.dModel(), h = cfg.nHeads(), dh = cfg.dHead(), m = cfg.dMlp();
        try (PointerScope scope = new PointerScope()) {
            wE = own(hf.load("transformer.wte.weight", cfg.dVocab(), d));
            wPos = own(hf.load("transformer.wpe.weight", cfg.nCtx(), d));
            blocks = new Block[cfg.nLayers()];
            for (int b = 0; b < cfg.nLayers(); b++) {
                String p = "transformer.h." + b + ".";
                // HF GPT-2 uses Conv1D: y = x @ W with W [in, out]; c_attn packs Q, K, V along out.
                Tensor cAttnW = hf.load(p + "attn.c_attn.weight", d, 3L * d);
                Tensor cAttnB = hf.load(p + "attn.c_attn.bias", 3L * d);
                Tensor[] qkvW = new Tensor[3];
                Tensor[] qkvFlat = new Tensor[3];
                Tensor[] qkvB = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    Tensor w = cAttnW.narrow(1, (long) i * d, d);                         // [dModel, nHeads*dHead]
                    qkvFlat[i] = own(w.contiguous());
                    qkvW[i] = own(w.reshape(d, h, dh).permute(1, 0, 2).contiguous());      // [nHeads, dModel, dHead]
                    qkvB[i] = own(cAttnB.narrow(0, (long) i * d, d).reshape(h, dh).contiguous());
                }
                Tensor wO = own(hf.load(p + "attn.c_proj.weight", d, d).reshape(h, dh, d).contiguous());
                Tensor bO = own(hf.load(p + "attn.c_proj.bias", d));
                Tensor ln1W = own(hf.load(p + "ln_1.weight", d));
                Tensor ln1B = own(hf.load(p + "ln_1.bias", d));
                Tensor ln2W = null, ln2B = null, wIn = null, bIn = null, wOut = null, bOut = null;
                if (!cfg.attnOnly()) {
                    ln2W = own(hf.load(p + "ln_2.weight", d));
                    ln2B = own(hf.load(p + "ln_2.bias", d));
                    wIn = own(hf.load(p + "mlp.c_fc.weight", d, m));
                    bIn = own(hf.load(p + "mlp.c_fc.bias", m));
                    wOut = own(hf.load(p + "mlp.c_proj.weight", m, d));
                    bOut = own(hf.load(p + "mlp.c_proj.bias", d));
                }
                blocks[b] = new Block(ln1W, ln1B, qkvW[0], qkvW[1], qkvW[2], qkvFlat[0], qkvFlat[1], qkvFlat[2],
                    qkvB[0], qkvB[1], qkvB[2], wO, bO, ln2W, ln2B, wIn, bIn, wOut, bOut);
            }
            lnFinalW = own(hf.load("transformer.ln_f.weight", d));
            lnFinalB = own(hf.load("transformer.ln_f.bias", d));
            if (cfg.tiedUnembed()) {
                wU = own(wE.t());
            } else {
                wU = own(hf.load("lm_head.weight", cfg.dVocab(), d).t().contiguous());
            }
            Tensor unembedBias = hf.loadIfPresent("lm_head.bias", cfg.dVocab());
            bU = unembedBias == null ? null : own(unembedBias);   // GPT-2 has none; TL weight processing adds one
        } catch (IOException | RuntimeException e) {
            owned.close();
            throw e;
        }
    }

    private Tensor own(Tensor t) {
        return owned.adopt(t);
    }

    /**
     * Loads a Hugging Face model folder: {@code config.json} and {@code model.safetensors}.
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
     * ({@link WeightProcessing#TL}: what AutoCircuit's {@code load_tl_model} does).
     */
    public static HookedTransformer fromPretrained(Path folder, WeightProcessing processing) throws IOException {
        java.util.Objects.requireNonNull(processing, "processing");
        if (!Files.isDirectory(folder)) {
            throw new IllegalArgumentException("model folder " + folder + " does not exist or is not a directory");
        }
        Path config = folder.resolve("config.json");
        Path weights = folder.resolve("model.safetensors");
        for (Path p : new Path[] {config, weights}) {
            if (!Files.isRegularFile(p)) {
                throw new IllegalArgumentException("model folder " + folder + " lacks " + p.getFileName()
                    + " (expected config.json and model.safetensors in Hugging Face format)");
            }
        }
        ModelConfig cfg = ModelConfig.fromHuggingFace(config);
        try (SafeTensors st = SafeTensors.open(weights)) {
            return new HookedTransformer(processing.config(cfg), processing.apply(cfg, st::load));
        }
    }

    /** Builds a model from any weight source that uses Hugging Face GPT-2 tensor names. */
    public static HookedTransformer fromWeights(ModelConfig cfg, WeightSource hfNamedWeights) throws IOException {
        return new HookedTransformer(cfg, hfNamedWeights);
    }

    /**
     * A model with random weights, as Hugging Face initialises GPT-2 (normal(0, initializerRange), zero
     * biases, unit LayerNorm gains), seeded. Used for GPT-2-small-shaped benchmarks where no pretrained
     * weights can be downloaded.
     */
    public static HookedTransformer randomInit(ModelConfig cfg, long seed, double initializerRange) {
        torch.manual_seed(seed);
        try {
            return new HookedTransformer(cfg, (name, shape) -> {
                if (name.endsWith(".bias")) return torch.zeros(shape);
                if (name.contains("ln_")) return torch.ones(shape);
                return torch.randn(shape).mul(new Scalar(initializerRange));
            });
        } catch (IOException e) {
            throw new AssertionError("random weights do no I/O", e);
        }
    }

    public ModelConfig config() {
        return cfg;
    }

    @Override
    public int dModel() {
        return cfg.dModel();
    }

    @Override
    public Graph graph(boolean factorized, boolean separateQkv, Integer seqLen) {
        return factorized
            ? Graph.transformerFactorized(cfg.shape(), separateQkv, seqLen)
            : Graph.transformerUnfactorized(cfg.shape(), seqLen);
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
    public Tensor forwardResidual(Tensor tokens, Tensor attentionMask, KvCache cache, HookPoints hooks,
                                  OutputSlice slice, Tensor[] residPre, boolean lastPositionOnly) {
        ensureOpen();
        long[] shape = tokens.shape();
        if (shape.length != 2) {
            throw new IllegalArgumentException("tokens must be [batch, seq], got " + java.util.Arrays.toString(shape));
        }
        long batch = shape[0], seq = shape[1];
        int prefix = cache == null ? 0 : cache.prefixLength();
        if (prefix + seq > cfg.nCtx()) {
            throw new IllegalArgumentException("sequence of " + (prefix + seq) + " tokens exceeds n_ctx " + cfg.nCtx());
        }
        Tensor keyMask = fullKeyMask(attentionMask, cache, batch, seq);                 // [batch, prefix+seq] or null
        Tensor embed = wE.index_select(0, tokens.reshape(-1)).reshape(batch, seq, cfg.dModel());
        Tensor resid = embed.add(positionEmbedding(keyMask, prefix, batch, seq));      // [batch, seq, dModel]
        return slice.apply(runBlocksResid(0, resid, keyMask, cache, hooks, residPre,
            lastPositionOnly && slice == OutputSlice.LAST_SEQ));
    }

    /**
     * Restarts a forward pass at block {@code startBlock} from its cached {@code hook_resid_pre}: every
     * earlier activation is unchanged when only later destinations are patched (ACDC's speed-up).
     */
    public Tensor forwardFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                   HookPoints hooks, OutputSlice slice) {
        ensureOpen();
        if (startBlock < 0 || startBlock >= cfg.nLayers()) {
            throw new IllegalArgumentException("startBlock " + startBlock + " outside [0, " + cfg.nLayers() + ")");
        }
        long[] shape = residPre.shape();
        Tensor keyMask = fullKeyMask(attentionMask, cache, shape[0], shape[1]);
        return unembed(slice.apply(runBlocksResid(startBlock, residPre, keyMask, cache, hooks, null, false)));
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
    public Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                    HookPoints hooks, OutputSlice slice, boolean lastPositionOnly) {
        ensureOpen();
        if (startBlock < 0 || startBlock >= cfg.nLayers()) {
            throw new IllegalArgumentException("startBlock " + startBlock + " outside [0, " + cfg.nLayers() + ")");
        }
        long[] shape = residPre.shape();
        Tensor keyMask = fullKeyMask(attentionMask, cache, shape[0], shape[1]);
        return slice.apply(runBlocksResid(startBlock, residPre, keyMask, cache, hooks, null,
            lastPositionOnly && slice == OutputSlice.LAST_SEQ));
    }

    /** {@code ln_final} then {@code W_U}: the logits {@code [..., dVocab]} of a final residual stream {@code [..., dModel]}. */
    public Tensor unembed(Tensor resid) {
        ensureOpen();
        Tensor logits = torch.matmul(layerNorm(resid, lnFinalW, lnFinalB), wU);
        return bU == null ? logits : logits.add(bU);
    }

    /** Computes the frozen key/value cache of a prompt prefix ({@code [batch, prefix]} tokens). */
    public KvCache buildKvCache(Tensor prefixTokens, Tensor prefixMask) {
        ensureOpen();
        long[] shape = prefixTokens.shape();
        Tensor[] keys = new Tensor[cfg.nLayers()];
        Tensor[] values = new Tensor[cfg.nLayers()];
        try (var guard = new org.bytedeco.pytorch.NoGradGuard()) {
            Tensor keyMask = prefixMask;
            Tensor resid = wE.index_select(0, prefixTokens.reshape(-1)).reshape(shape[0], shape[1], cfg.dModel())
                .add(positionEmbedding(keyMask, 0, shape[0], shape[1]));
            for (int b = 0; b < cfg.nLayers(); b++) {
                Block w = blocks[b];
                Tensor ln = layerNorm(resid, w.ln1W(), w.ln1B());
                keys[b] = projectShared(ln, w.wKFlat(), w.bK());
                values[b] = projectShared(ln, w.wVFlat(), w.bV());
                resid = blockForward(b, resid, keyMask, null, HookPoints.NONE, keys[b], values[b], false);
            }
        }
        return KvCache.of(keys, values, prefixMask, shape[0], shape[1]);
    }

    private Tensor runBlocksResid(int start, Tensor resid, Tensor keyMask, KvCache cache, HookPoints hooks,
                                  Tensor[] residPre, boolean lastPositionOnly) {
        for (int b = start; b < cfg.nLayers(); b++) {
            resid = hooks.apply("blocks." + b + ".hook_resid_pre", resid);
            if (residPre != null) residPre[b] = resid;
            resid = blockForward(b, resid, keyMask, cache, hooks, null, null,
                lastPositionOnly && b == cfg.nLayers() - 1);
        }
        return resid;
    }

    /**
     * One block. When {@code cacheK}/{@code cacheV} are given, the block is being run to fill a cache and
     * uses those (already computed) keys and values.
     */
    private Tensor blockForward(int b, Tensor residPre, Tensor keyMask, KvCache cache, HookPoints hooks,
                                Tensor cacheK, Tensor cacheV, boolean lastPositionOnly) {
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
        q = project(qIn, w.ln1W(), w.ln1B(), w.wQ(), w.wQFlat(), w.bQ());             // [batch, seq, nHeads, dHead]
        k = cacheK != null ? cacheK : project(kIn, w.ln1W(), w.ln1B(), w.wK(), w.wKFlat(), w.bK());
        v = cacheV != null ? cacheV : project(vIn, w.ln1W(), w.ln1B(), w.wV(), w.wVFlat(), w.bV());
        if (cache != null) {
            k = torch.cat(new TensorVector(cache.keys(b), k), 1);                      // [batch, prefix+seq, nHeads, dHead]
            v = torch.cat(new TensorVector(cache.values(b), v), 1);
        }
        Tensor z = attention(q, k, v, keyMask, hooks, p);                                       // [batch, seq, nHeads, dHead]
        Tensor result = headResults(z, w.wO());                                       // [batch, seq, nHeads, dModel]
        result = hooks.apply(p + "attn.hook_result", result);
        Tensor attnOut = result.sum(2).add(w.bO());                                   // [batch, seq, dModel]
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
        Tensor hidden = linear(layerNorm(mlpIn, w.ln2W(), w.ln2B()), w.wIn(), w.bIn());   // [batch, seq, dMlp]
        Tensor mlpOut = linear(activation(hidden), w.wOut(), w.bOut());               // [batch, seq, dModel]
        mlpOut = hooks.apply(p + "hook_mlp_out", mlpOut);
        Tensor residPost = cfg.parallelAttnMlp() ? residPre.add(attnOut).add(mlpOut) : residMid.add(mlpOut);
        return hooks.apply(p + "hook_resid_post", residPost);
    }

    /**
     * LayerNorm then the Q, K or V projection of every head: {@code [batch, seq, nHeads, dHead]}. A shared input is
     * projected for all heads in one product; heads with their own input are projected per head and, when the others
     * share one, written over the shared result.
     */
    private Tensor project(HeadInputs in, Tensor lnW, Tensor lnB, Tensor wHeads, Tensor wFlat, Tensor bias) {
        if (in.own() == null) return projectShared(layerNorm(in.shared(), lnW, lnB), wFlat, bias);
        if (in.shared() == null) return projectPerHead(layerNorm(in.own(), lnW, lnB), wHeads, bias);
        Tensor all = projectShared(layerNorm(in.shared(), lnW, lnB), wFlat, bias);
        Tensor own = projectPerHead(layerNorm(in.own(), lnW, lnB), wHeads.index_select(0, in.heads()),
            bias.index_select(0, in.heads()));                                       // [batch, seq, p, dHead]
        return all.index_copy(2, in.heads(), own);
    }

    /** Per-head projections of LayerNormed per-head inputs {@code [b,s,p,d]} with weights {@code [p, d, dHead]}. */
    private Tensor projectPerHead(Tensor ln, Tensor wHeads, Tensor bias) {
        long[] s = ln.shape();                                                        // [batch, seq, p, dModel]
        long h = s[2];
        Tensor x = ln.permute(2, 0, 1, 3).reshape(h, s[0] * s[1], s[3]);            // [p, batch*seq, dModel]
        Tensor y = torch.bmm(x, wHeads);                                              // [p, batch*seq, dHead]
        return y.reshape(h, s[0], s[1], cfg.dHead()).permute(1, 2, 0, 3).add(bias);  // [batch, seq, p, dHead]
    }

    private Tensor projectShared(Tensor ln, Tensor wFlat, Tensor bias) {
        long[] s = ln.shape();                                                        // [batch, seq, dModel]
        return torch.matmul(ln, wFlat).reshape(s[0], s[1], cfg.nHeads(), cfg.dHead()).add(bias);
    }

    /**
     * Scaled dot-product attention with causal and padding masks; NaN rows (all keys masked) become 0. The
     * pattern passes TransformerLens's {@code attn.hook_pattern} ({@code [batch, nHeads, seq, prefix+seq]}). When the
     * hooks do not observe the pattern, libtorch's fused {@code scaled_dot_product_attention} computes the same
     * output without forming it (about 0.6 instead of 1.5 ms per GPT-2-small block at 16 × 13 tokens).
     */
    private Tensor attention(Tensor q, Tensor k, Tensor v, Tensor keyMask, HookPoints hooks, String blockPrefix) {
        long[] qs = q.shape();
        long seq = qs[1], total = k.shape()[1], prefix = total - seq;
        // causal: query i (absolute position prefix+i) sees keys j ≤ prefix+i
        Tensor allowed = torch.ones(seq, total).tril(prefix).to(torch.ScalarType.Bool);   // [seq, total]
        if (keyMask != null) {
            Tensor keys = keyMask.to(torch.ScalarType.Bool).unsqueeze(1).unsqueeze(1);       // [batch, 1, 1, total]
            allowed = allowed.unsqueeze(0).unsqueeze(0).logical_and(keys);                    // [batch, 1, seq, total]
        }
        Tensor qh = q.permute(0, 2, 1, 3);                                            // [batch, nHeads, seq, dHead]
        if (!hooks.observes(blockPrefix + "attn.hook_pattern")) {
            Tensor z = torch.scaled_dot_product_attention(qh, k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3),
                new TensorOptional(allowed), 0.0, false, new org.bytedeco.pytorch.DoubleOptional(), false);
            if (keyMask != null) {
                // rows with every key masked are 0, as the pattern path's nan_to_num makes them (libtorch 2.13's CPU
                // kernel already gives 0 there, HookedTransformerGoldenTest checks it; this keeps it whatever kernel runs)
                z = z.masked_fill(allowed.logical_not().all(-1, true), new Scalar(0.0));
            }
            return z.permute(0, 2, 1, 3);                                             // [batch, seq, nHeads, dHead]
        }
        Tensor kh = k.permute(0, 2, 3, 1);                                            // [batch, nHeads, dHead, total]
        Tensor scores = torch.matmul(qh, kh).div(new Scalar(Math.sqrt(cfg.dHead()))); // [batch, nHeads, seq, total]
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
        };
    }

    private Tensor layerNorm(Tensor x, Tensor w, Tensor b) {
        return torch.layer_norm(x, new long[] {cfg.dModel()}, new TensorOptional(w), new TensorOptional(b),
            cfg.lnEps(), false);
    }

    /** The key mask over prefix and current positions, or null when nothing is padded. */
    private static Tensor fullKeyMask(Tensor attentionMask, KvCache cache, long batch, long seq) {
        Tensor prefixMask = cache == null ? null : cache.prefixMask();
        if (attentionMask == null && prefixMask == null) return null;
        Tensor current = attentionMask != null ? attentionMask : torch.ones(new long[] {batch, seq},
            new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long));
        if (cache == null) return current;
        Tensor pm = prefixMask != null ? prefixMask : torch.ones(new long[] {batch, cache.prefixLength()},
            new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long));
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
    private static Tensor positions(Tensor keyMask, int prefix, long seq) {
        if (keyMask == null) {
            return torch.arange(new Scalar(prefix), new Scalar(prefix + seq),
                new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long));
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
