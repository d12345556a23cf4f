package org.autocircuit.training;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.function.Function;

/**
 * Everything that decides the weights {@link Trainer} produces: the seed, the task, the architecture and the
 * optimiser. Two runs with equal configs on the same machine give identical weights; {@code config.json} of a
 * trained model records the config under {@code "autocircuit_training"} so the run can be repeated.
 *
 * <p>The task: every training sequence is {@code BOS r r} (then filler), with {@code r} a run of
 * {@code minRepeat..maxRepeat} distinct random words; the loss is next-token cross-entropy on the second copy of
 * {@code r} only (positions whose next token is determined by the first copy). The repeat length varies, so a
 * head that attends to a fixed offset cannot solve it: only "find the earlier occurrence of this token and copy
 * what followed" (an induction head fed by a previous-token head) can.
 *
 * @param seed          seeds weight initialisation ({@code torch.manual_seed}) and the data ({@link java.util.Random})
 * @param steps         optimiser steps
 * @param batchSize     sequences per step
 * @param learningRate  peak Adam learning rate
 * @param warmupSteps   linear warm-up from 0 to {@code learningRate}; then cosine decay to 10% at the last step
 * @param weightDecay   AdamW decoupled weight decay (0 for plain Adam)
 * @param vocabWords    number of word tokens (the vocabulary adds BOS)
 * @param dModel        residual stream width
 * @param nHeads        attention heads per layer ({@code dModel} must be divisible by it)
 * @param nLayers       attention-only layers
 * @param nCtx          learned positions; at least {@code 1 + 2 maxRepeat}
 * @param minRepeat     shortest repeated run
 * @param maxRepeat     longest repeated run
 * @param initRange     standard deviation of the normal initialisation of every matrix
 */
public record TrainConfig(
        long seed,
        int steps,
        int batchSize,
        double learningRate,
        int warmupSteps,
        double weightDecay,
        int vocabWords,
        int dModel,
        int nHeads,
        int nLayers,
        int nCtx,
        int minRepeat,
        int maxRepeat,
        double initRange) {

    public TrainConfig {
        require(steps >= 1, "steps", steps);
        require(batchSize >= 1, "batchSize", batchSize);
        require(learningRate > 0 && Double.isFinite(learningRate), "learningRate", learningRate);
        require(warmupSteps >= 0, "warmupSteps", warmupSteps);
        require(weightDecay >= 0 && Double.isFinite(weightDecay), "weightDecay", weightDecay);
        require(vocabWords >= 2, "vocabWords", vocabWords);
        require(dModel >= 1, "dModel", dModel);
        require(nHeads >= 1 && dModel % nHeads == 0, "nHeads (must divide dModel " + dModel + ")", nHeads);
        require(nLayers >= 1, "nLayers", nLayers);
        require(minRepeat >= 2, "minRepeat", minRepeat);
        require(maxRepeat >= minRepeat, "maxRepeat (must be ≥ minRepeat " + minRepeat + ")", maxRepeat);
        require(vocabWords >= nCtx - 1 - minRepeat, "vocabWords (must be ≥ nCtx − 1 − minRepeat = " + (nCtx - 1 - minRepeat)
            + ": a prefix and run hold distinct words)", vocabWords);
        require(nCtx >= 1 + 2 * maxRepeat, "nCtx (must be ≥ 1 + 2 maxRepeat = " + (1 + 2 * maxRepeat) + ")", nCtx);
        require(initRange > 0 && Double.isFinite(initRange), "initRange", initRange);
    }

    private static void require(boolean ok, String field, Object value) {
        if (!ok) throw new IllegalArgumentException("TrainConfig." + field + " is invalid: " + value);
    }

    /** The bundled model's recipe (datasets/models/induction-2l). */
    public static TrainConfig defaults() {
        return new TrainConfig(1, 4000, 32, 1e-3, 100, 0.01, 64, 64, 4, 2, 32, 4, 12, 0.02);
    }

    /** Sequence length of every training batch: the whole context (BOS, a filler prefix, r, r, filler). */
    public int trainSeqLen() {
        return nCtx;
    }

    /** Learning rate at step {@code step} (0-based): linear warm-up, then cosine decay to 10% of the peak. */
    public double learningRateAt(int step) {
        if (step < warmupSteps) return learningRate * (step + 1) / warmupSteps;
        int decaySteps = Math.max(1, steps - warmupSteps);
        double progress = Math.min(1.0, (double) (step - warmupSteps) / decaySteps);
        return learningRate * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }

    /** A copy with another number of steps (and everything else equal). */
    public TrainConfig withSteps(int newSteps) {
        return new TrainConfig(seed, newSteps, batchSize, learningRate, warmupSteps, weightDecay, vocabWords, dModel,
            nHeads, nLayers, nCtx, minRepeat, maxRepeat, initRange);
    }

    /** The config as a JSON object (snake_case keys, as stored in config.json). */
    public ObjectNode toJson() {
        ObjectNode o = new ObjectMapper().createObjectNode();
        o.put("seed", seed);
        o.put("steps", steps);
        o.put("batch_size", batchSize);
        o.put("learning_rate", learningRate);
        o.put("warmup_steps", warmupSteps);
        o.put("weight_decay", weightDecay);
        o.put("vocab_words", vocabWords);
        o.put("d_model", dModel);
        o.put("n_heads", nHeads);
        o.put("n_layers", nLayers);
        o.put("n_ctx", nCtx);
        o.put("min_repeat", minRepeat);
        o.put("max_repeat", maxRepeat);
        o.put("init_range", initRange);
        return o;
    }

    /**
     * Reads {@link #toJson()}'s form.
     *
     * @param where names the source in messages (a file and field)
     * @throws IllegalArgumentException naming the missing or malformed key
     */
    public static TrainConfig fromJson(JsonNode o, String where) {
        if (o == null || !o.isObject()) throw new IllegalArgumentException(where + ": expected a JSON object, got " + o);
        Function<String, JsonNode> field = key -> {
            JsonNode n = o.get(key);
            if (n == null || !n.isNumber()) {
                throw new IllegalArgumentException(where + ": field '" + key + "' must be a number, got " + n);
            }
            return n;
        };
        return new TrainConfig(
            field.apply("seed").asLong(), field.apply("steps").asInt(), field.apply("batch_size").asInt(),
            field.apply("learning_rate").asDouble(), field.apply("warmup_steps").asInt(),
            field.apply("weight_decay").asDouble(), field.apply("vocab_words").asInt(), field.apply("d_model").asInt(),
            field.apply("n_heads").asInt(), field.apply("n_layers").asInt(), field.apply("n_ctx").asInt(),
            field.apply("min_repeat").asInt(), field.apply("max_repeat").asInt(), field.apply("init_range").asDouble());
    }
}
