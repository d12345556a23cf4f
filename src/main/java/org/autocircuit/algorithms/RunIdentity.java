package org.autocircuit.algorithms;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * What a resumable run's checkpoint must agree on beyond the graph and the first batch, which the algorithms check
 * themselves: the model's weights, the dataset, the options the caller chose and the code that wrote it. Each part is
 * an opaque fingerprint; {@link #differences} names the parts that differ, for the refusal message.
 *
 * <p>The command line fills all four (model: {@link org.autocircuit.util.Fingerprints#ofFolder} of the model folder;
 * dataset: the file's fingerprint and the loader options; options: algorithm, parameters, seed, task settings; code:
 * {@link #CODE_VERSION}). A library caller that passes no identity gets the graph/first-batch checks only, so it must
 * not reuse a checkpoint file across models.
 *
 * @param model   fingerprint of the weights (and config)
 * @param dataset fingerprint of the dataset and how it was loaded
 * @param options the run's options in a stable text form
 * @param code    the version of the code (results may change between versions)
 */
public record RunIdentity(
        @JsonProperty("model") String model,
        @JsonProperty("dataset") String dataset,
        @JsonProperty("options") String options,
        @JsonProperty("code") String code) {

    /** This build's version, stored in every checkpoint; bump it when an algorithm's results change. */
    public static final String CODE_VERSION = "autocircuit-java 0.1.0";

    public RunIdentity {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dataset, "dataset");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(code, "code");
    }

    /** An identity with this build's {@link #CODE_VERSION}. */
    public static RunIdentity of(String model, String dataset, String options) {
        return new RunIdentity(model, dataset, options, CODE_VERSION);
    }

    /**
     * The parts that differ between this run ({@code this}) and the one a checkpoint was written for, as
     * "model weights (this run X, the checkpoint Y)"; empty when they agree. A null {@code other} (a checkpoint of a
     * run without identity) differs in every part.
     */
    public List<String> differences(RunIdentity other) {
        List<String> out = new ArrayList<>();
        String[][] parts = {
            {"model weights", model, other == null ? null : other.model},
            {"dataset", dataset, other == null ? null : other.dataset},
            {"options", options, other == null ? null : other.options},
            {"code version", code, other == null ? null : other.code}};
        for (String[] p : parts) {
            if (!Objects.equals(p[1], p[2])) out.add(p[0] + " (this run " + p[1] + ", the checkpoint " + p[2] + ")");
        }
        return out;
    }

    /** One line per part, the form stored in probing checkpoints. */
    String lines() {
        return "model: " + model + "\ndataset: " + dataset + "\noptions: " + options + "\ncode: " + code;
    }
}
