package org.autocircuit.training;

import java.util.Random;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.openblas.global.openblas_nolapack;
import org.bytedeco.pytorch.AdamW;
import org.bytedeco.pytorch.AdamWOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Trains a small attention-only transformer on the repeated-random-tokens task ({@link InductionTask}) with
 * libtorch's AdamW, from a seed.
 *
 * <p>Each step draws a batch from a {@link Random} seeded with the config's seed, builds the model over the
 * current weights ({@link TrainableWeights#model()}), computes the next-token loss on the second copy of the
 * repeated run ({@link #loss}), back-propagates and steps. Nothing else is random (no dropout), so a config
 * gives identical weights on every run on the same machine and libtorch build (floating-point sums may round
 * differently on another CPU or thread count).
 */
public final class Trainer {
    private Trainer() {}

    /** Called after every step. */
    @FunctionalInterface
    public interface StepListener {
        /**
         * @param step         0-based step just finished
         * @param loss         that step's training loss (nats per predicted token)
         * @param learningRate the learning rate used
         */
        void onStep(int step, double loss, double learningRate);

        StepListener NONE = (step, loss, lr) -> {};
    }

    /** The architecture a config trains: attention-only, LayerNorm, learned positions, untied unembedding. */
    public static ModelConfig modelConfig(TrainConfig cfg) {
        int vocab = new InductionTask(cfg.vocabWords()).vocabSize();
        return new ModelConfig("AutoCircuitTransformer", cfg.nLayers(), cfg.dModel(), cfg.nHeads(),
            cfg.dModel() / cfg.nHeads(), 0, vocab, cfg.nCtx(), 1e-5, ModelConfig.ActFn.GELU_NEW, true, false, false, 0);
    }

    /**
     * Trains from scratch; the caller owns (and closes) the result.
     *
     * <p>Runs single-threaded: libtorch's intra-op threads are set to 1 for the run (and restored after), and
     * OpenBLAS's to 1 (left so: OpenBLAS cannot report its previous setting). The matrices are tiny, so threads
     * only add overhead, and OpenBLAS's spinning worker threads slow every matrix product by 10-50× when the
     * cores are shared with other processes. One thread also makes the floating-point sums, hence the weights,
     * independent of the machine's core count.
     */
    public static TrainableWeights train(TrainConfig cfg, StepListener listener) {
        int torchThreads = torch.get_num_threads();
        int blasThreads = openblas_nolapack.blas_get_num_threads();
        torch.set_num_threads(1);
        openblas_nolapack.blas_set_num_threads(1);
        TrainableWeights weights = TrainableWeights.init(modelConfig(cfg), cfg.seed(), cfg.initRange());
        try {
            continueTraining(weights, cfg, listener);
            return weights;
        } catch (RuntimeException | Error e) {
            weights.close();
            throw e;
        } finally {
            // both restored: a later matrix product of this process must run as it would have without training
            // (OpenBLAS's thread count changes its partition of the work, hence the last bits of results)
            torch.set_num_threads(torchThreads);
            openblas_nolapack.blas_set_num_threads(blasThreads);
        }
    }

    private static void continueTraining(TrainableWeights weights, TrainConfig cfg, StepListener listener) {
        InductionTask task = new InductionTask(cfg.vocabWords());
        Random data = new Random(cfg.seed());
        AdamWOptions options = new AdamWOptions(cfg.learningRate());
        options.weight_decay().put(cfg.weightDecay());
        try (PointerScope optimiserScope = new PointerScope()) {
            AdamW optimiser = new AdamW(new TensorVector(weights.parameters().toArray(new Tensor[0])), options);
            for (int step = 0; step < cfg.steps(); step++) {
                Progress.checkInterrupted("training");
                double lr = cfg.learningRateAt(step);
                optimiser.param_groups().get(0).options().set_lr(lr);
                double lossValue;
                try (PointerScope stepScope = new PointerScope()) {
                    InductionTask.Batch batch = task.sample(data, cfg.batchSize(), cfg.trainSeqLen(), cfg.minRepeat(), cfg.maxRepeat());
                    optimiser.zero_grad();
                    try (HookedTransformer model = weights.model()) {
                        Tensor logits = model.forward(batch.tokens().toTensor(), null, null, HookPoints.NONE,
                            OutputSlice.ALL, null);                                           // [batch, seq, dVocab]
                        Tensor loss = loss(logits, batch.targets().toTensor(), batch.lossMask().toTensor());
                        loss.backward();
                        lossValue = loss.item_double();
                    }
                    optimiser.step();
                }
                if (!Double.isFinite(lossValue)) {
                    throw new IllegalStateException("training diverged: loss " + lossValue + " at step " + step
                        + " (lower the learning rate)");
                }
                listener.onStep(step, lossValue, lr);
            }
            optimiser.close();
        }
    }

    /**
     * Mean next-token cross-entropy over the masked positions.
     *
     * @param logits   {@code [batch, seq, dVocab]}
     * @param targets  {@code [batch, seq]} int64 next tokens
     * @param lossMask {@code [batch, seq]} float32, 1 where the prediction counts
     * @return a scalar, in the caller's scope
     */
    public static Tensor loss(Tensor logits, Tensor targets, Tensor lossMask) {
        Tensor logProbs = logits.log_softmax(-1);                                            // [batch, seq, dVocab]
        Tensor nll = logProbs.gather(2, targets.unsqueeze(2)).squeeze(2).neg();              // [batch, seq]
        return nll.mul(lossMask).sum().div(lossMask.sum());
    }

    /**
     * Fraction of the predictable positions (the second copy of the run, as in training) where the model's top
     * token is the right one, on {@code batchSize} fresh sequences drawn from {@code seed}.
     */
    public static double inductionAccuracy(HookedTransformer model, TrainConfig cfg, long seed, int batchSize) {
        InductionTask task = new InductionTask(cfg.vocabWords());
        InductionTask.Batch batch = task.sample(new Random(seed), batchSize, cfg.trainSeqLen(), cfg.minRepeat(), cfg.maxRepeat());
        try (PointerScope scope = new PointerScope(); var noGrad = new org.bytedeco.pytorch.NoGradGuard()) {
            Tensor logits = model.forward(batch.tokens().toTensor(), null, null, HookPoints.NONE, OutputSlice.ALL, null);
            Tensor predicted = logits.argmax(new org.bytedeco.pytorch.LongOptional(2), false);   // [batch, seq]
            Tensor mask = batch.lossMask().toTensor();
            Tensor correct = predicted.eq(batch.targets().toTensor()).toType(torch.ScalarType.Float);
            return correct.mul(mask).sum().item_double() / mask.sum().item_double();
        }
    }
}
