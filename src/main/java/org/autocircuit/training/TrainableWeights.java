package org.autocircuit.training;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.SafeTensors;
import org.autocircuit.model.arch.Architectures;
import org.autocircuit.util.OwnedTensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The parameters of an attention-only GPT-2-architecture model as leaf tensors that require grad, stored
 * under Hugging Face GPT-2 names (the names {@code model.safetensors} uses), so training writes exactly what
 * {@link HookedTransformer#fromPretrained} reads.
 *
 * <p>{@link #model()} builds a {@link HookedTransformer} whose weights are differentiable views of these
 * leaves: the transformer's layout conversions (splitting {@code c_attn} into Q, K, V, per-head reshapes)
 * become part of the autograd graph, so one backward pass through the model reaches every parameter here.
 * Build a fresh model after every optimiser step (it is cheap: a few dozen small copies); a model built
 * before a step holds the old values.
 *
 * <p>Owns its tensors; {@link #close()} frees them.
 */
public final class TrainableWeights implements AutoCloseable {
    private final ModelConfig cfg;
    private final OwnedTensors owned = new OwnedTensors();
    private final Map<String, Tensor> byName = new LinkedHashMap<>();
    private boolean closed;

    private TrainableWeights(ModelConfig cfg) {
        this.cfg = cfg;
    }

    /**
     * The names and shapes of every parameter of an attention-only model with an untied unembedding: the tensors the
     * GPT-2 adapter ({@link org.autocircuit.model.arch.Gpt2}) reads, in its order, so that what training writes is
     * exactly what loading reads.
     */
    public static Map<String, long[]> shapes(ModelConfig cfg) {
        if (!cfg.attnOnly()) throw new IllegalArgumentException("TrainableWeights supports attention-only models only");
        if (cfg.tiedUnembed()) throw new IllegalArgumentException("TrainableWeights expects an untied unembedding");
        return Architectures.forName(cfg.architecture()).tensorShapes(cfg);
    }

    /**
     * Fresh weights: every matrix normal(0, initRange), biases 0, LayerNorm gains 1, drawn in {@link #shapes}
     * order from libtorch's global generator seeded with {@code seed}.
     */
    public static TrainableWeights init(ModelConfig cfg, long seed, double initRange) {
        TrainableWeights w = new TrainableWeights(cfg);
        torch.manual_seed(seed);
        try (PointerScope scope = new PointerScope()) {
            for (var e : shapes(cfg).entrySet()) {
                String name = e.getKey();
                long[] shape = e.getValue();
                Tensor t;
                if (name.endsWith(".bias")) {
                    t = torch.zeros(shape);
                } else if (name.contains("ln_")) {
                    t = torch.ones(shape);
                } else {
                    t = torch.randn(shape).mul(new Scalar(initRange));
                }
                w.add(name, t);
            }
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /** Reads weights written by {@link #save} (to continue training or to compare runs). */
    public static TrainableWeights load(ModelConfig cfg, Path safetensors) throws IOException {
        TrainableWeights w = new TrainableWeights(cfg);
        try (PointerScope scope = new PointerScope(); SafeTensors st = SafeTensors.open(safetensors)) {
            for (var e : shapes(cfg).entrySet()) w.add(e.getKey(), st.load(e.getKey(), e.getValue()));
        } catch (IOException | RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    private void add(String name, Tensor t) {
        t.requires_grad_(true);
        byName.put(name, owned.adopt(t));
    }

    public ModelConfig config() {
        return cfg;
    }

    /** The leaves, in a fixed order (what the optimiser updates). */
    public List<Tensor> parameters() {
        ensureOpen();
        return List.copyOf(byName.values());
    }

    /** Name → leaf, in {@link #shapes} order. */
    public Map<String, Tensor> named() {
        ensureOpen();
        return Collections.unmodifiableMap(byName);
    }

    /** Number of scalar parameters. */
    public long count() {
        long n = 0;
        for (long[] s : shapes(cfg).values()) n += Arrays.stream(s).reduce(1, (a, b) -> a * b);
        return n;
    }

    /**
     * A model over differentiable views of these weights (see the class comment). The caller closes it; closing
     * frees the views, never the weights.
     */
    public HookedTransformer model() {
        ensureOpen();
        try {
            return HookedTransformer.fromWeights(cfg, (name, shape) -> {
                Tensor leaf = byName.get(name);
                if (leaf == null) throw new IllegalArgumentException("no trainable weight named " + name);
                return leaf.view(shape);
            });
        } catch (IOException e) {
            throw new AssertionError("in-memory weights do no I/O", e);
        }
    }

    /** Writes the weights as {@code model.safetensors} (F32, atomically). */
    public void save(Path safetensors) throws IOException {
        ensureOpen();
        SafeTensors.write(safetensors, byName);
    }

    /** Copies of every weight as float arrays (for comparing runs), in {@link #shapes} order. */
    public List<float[]> snapshot() {
        ensureOpen();
        List<float[]> out = new ArrayList<>();
        for (Tensor t : byName.values()) out.add(org.autocircuit.util.HostTensor.of(t).floats());
        return out;
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("TrainableWeights is closed");
    }

    /** Frees the weights. Closing twice is a no-op. */
    @Override
    public void close() {
        closed = true;
        owned.close();
        byName.clear();
    }
}
