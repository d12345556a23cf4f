package org.autocircuit.algorithms;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.autocircuit.algorithms.MaskGradient.AnswerFunction;
import org.autocircuit.algorithms.MaskGradient.GradFunction;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;

/**
 * The algorithm registry: every algorithm AutoCircuit registers, with its key, name, short name and
 * bound parameters, in AutoCircuit's order. {@link #LISTED} is AutoCircuit's {@code PRUNE_ALGOS};
 * {@link #byKey(String)} also accepts a short name (case-insensitive) so that a command line can say {@code EAP}.
 */
public final class PruneAlgorithms {
    private PruneAlgorithms() {}

    public static final RegisteredAlgorithm GROUND_TRUTH = new RegisteredAlgorithm("Official Circuit", "Ground Truth", "GT",
        true, Map.of(), GroundTruth::scores);
    public static final RegisteredAlgorithm ACT_MAG = new RegisteredAlgorithm("Act Mag", "Activation Magnitude", "Act Mag",
        true, Map.of(), ActivationMagnitude::scores);
    public static final RegisteredAlgorithm RANDOM = new RegisteredAlgorithm("Random", "Random", "Random", true,
        Map.of("seeded_by", "run seed"), RandomScores::scores);
    /**
     * The exact (reference) form of Edge Attribution Patching, with AutoCircuit's answer_diff=True. AutoCircuit's short
     * name is "EAP", shared with the fast form; here it is "EAP (exact)" so that the short name "EAP" names one
     * algorithm (the fast form, which gives the same scores).
     */
    public static final RegisteredAlgorithm EDGE_ATTR_PATCH = new RegisteredAlgorithm("Edge Attribution Patching",
        "Edge Attribution Patching", "EAP (exact)", true, parametersOf(EdgeAttributionPatching.Options.defaults()),
        run -> EdgeAttributionPatching.scores(run, EdgeAttributionPatching.Options.defaults()));
    public static final RegisteredAlgorithm ACDC = new RegisteredAlgorithm("ACDC", "ACDC", "ACDC", true,
        parametersOf(Acdc.Options.acdc()), run -> Acdc.scores(run, Acdc.Options.acdc()));
    public static final RegisteredAlgorithm MSE_ACDC = new RegisteredAlgorithm("MSE ACDC", "MSE ACDC", "ACDC (MSE)", true,
        parametersOf(Acdc.Options.mseAcdc()), run -> Acdc.scores(run, Acdc.Options.mseAcdc()));
    public static final RegisteredAlgorithm INTEGRATED_EDGE_GRADS = maskGradient(
        "Integrated Edge Gradients (Logit Grad)", "Integrated Edge Gradients (Logit Grad)", "IEG (Answer Logit)", false,
        GradFunction.LOGIT, AnswerFunction.AVG_VAL, null, 50);
    public static final RegisteredAlgorithm INTEGRATED_EDGE_GRADS_LOGIT_DIFF = maskGradient(
        "Integrated Edge Gradients (Logit Diff)", "Integrated Edge Gradients", "IEG", true,
        GradFunction.LOGIT, AnswerFunction.AVG_DIFF, null, 1000);
    public static final RegisteredAlgorithm PROB_GRAD = maskGradient(
        "Edge Answer Prob Gradient At Clean", "Prob Gradient", "EAP (Prob)", false,
        GradFunction.PROB, AnswerFunction.AVG_VAL, 0.0, null);
    public static final RegisteredAlgorithm LOGIT_EXP_GRAD = maskGradient(
        "Edge Answer Logit Exp Gradient At Clean", "Exp Logit Gradient", "EAP (Answer Logit)", false,
        GradFunction.LOGIT_EXP, AnswerFunction.AVG_VAL, 0.0, null);
    public static final RegisteredAlgorithm LOGPROB_GRAD = maskGradient(
        "Edge Answer Log Prob Gradient At Clean", "Logprob Gradient", "EAP (Answer Logprob)", true,
        GradFunction.LOGPROB, AnswerFunction.AVG_VAL, 0.0, null);
    public static final RegisteredAlgorithm LOGPROB_DIFF_GRAD = maskGradient(
        "Edge Answer Log Prob Diff Gradient At Clean", "Logprob Diff Gradient", "EAP (Logprob Diff)", true,
        GradFunction.LOGPROB, AnswerFunction.AVG_DIFF, 0.0, null);
    /** The fast Edge Attribution Patching used in practice. */
    public static final RegisteredAlgorithm LOGIT_DIFF_GRAD = maskGradient(
        "Edge Answer Logit Diff Gradient At Clean", "Edge Attribution Patching", "EAP", true,
        GradFunction.LOGIT, AnswerFunction.AVG_DIFF, 0.0, null);
    public static final RegisteredAlgorithm LOGIT_MSE_GRAD = maskGradient(
        "Edge Answer Logit MSE Gradient At Clean", "Edge Attribution Patching (MSE)", "EAP (MSE)", true,
        GradFunction.LOGIT, AnswerFunction.MSE, 0.0, null);

    public static final RegisteredAlgorithm SUBNETWORK_EDGE_PROBING = subnetworkProbing("Subnetwork Edge Probing",
        "Subnetwork Edge Probing", "SEP", SubnetworkProbing.Options.subnetworkEdgeProbing());
    public static final RegisteredAlgorithm CIRCUIT_PROBING = circuitProbing("Circuit Probing", "Circuit Probing", "CP",
        CircuitProbing.Options.circuitProbing());
    public static final RegisteredAlgorithm SUBNETWORK_TREE_PROBING = subnetworkProbing("Subnetwork Tree Probing",
        "Subnetwork Tree Probing", "STP", SubnetworkProbing.Options.subnetworkTreeProbing());
    public static final RegisteredAlgorithm CIRCUIT_TREE_PROBING = circuitProbing("Tree Probing", "Tree Probing", "TP",
        CircuitProbing.Options.treeProbing());
    public static final RegisteredAlgorithm MSE_SUBNETWORK_TREE_PROBING = subnetworkProbing(
        "MSE Subnetwork Tree Probing", "MSE Subnetwork Tree Probing", "STP (MSE)",
        SubnetworkProbing.Options.mseSubnetworkTreeProbing());
    public static final RegisteredAlgorithm MSE_CIRCUIT_TREE_PROBING = circuitProbing("MSE Tree Probing",
        "MSE Tree Probing", "TP (MSE)", CircuitProbing.Options.mseTreeProbing());
    public static final RegisteredAlgorithm OPPOSITE_TREE_PROBING = circuitProbing("Opposite Tree Probing",
        "Opposite Tree Probing", "OTP", CircuitProbing.Options.oppositeTreeProbing());

    /** Every registered algorithm, AutoCircuit's listed order first, then the unlisted ones. */
    public static final List<RegisteredAlgorithm> ALL = List.of(
        GROUND_TRUTH, ACT_MAG, RANDOM, EDGE_ATTR_PATCH, ACDC, MSE_ACDC, INTEGRATED_EDGE_GRADS_LOGIT_DIFF,
        LOGPROB_GRAD, LOGPROB_DIFF_GRAD, LOGIT_DIFF_GRAD, LOGIT_MSE_GRAD,
        SUBNETWORK_EDGE_PROBING, CIRCUIT_PROBING, SUBNETWORK_TREE_PROBING, CIRCUIT_TREE_PROBING,
        MSE_SUBNETWORK_TREE_PROBING, MSE_CIRCUIT_TREE_PROBING, OPPOSITE_TREE_PROBING,
        INTEGRATED_EDGE_GRADS, PROB_GRAD, LOGIT_EXP_GRAD);

    /** AutoCircuit's {@code PRUNE_ALGOS}: the listed entries, in its order. */
    public static final List<RegisteredAlgorithm> LISTED = ALL.stream().filter(RegisteredAlgorithm::listed).toList();

    /**
     * The algorithm with this key or short name, case-insensitive. A key wins over a short name (several entries
     * share the short name {@code EAP}: it means the fast mask-gradient form).
     *
     * @throws IllegalArgumentException naming the value and listing the valid keys and short names
     */
    public static RegisteredAlgorithm byKey(String keyOrShortName) {
        String k = keyOrShortName == null ? "" : keyOrShortName.trim().toLowerCase(Locale.ROOT);
        for (RegisteredAlgorithm a : ALL) if (a.key().toLowerCase(Locale.ROOT).equals(k)) return a;
        for (RegisteredAlgorithm a : ALL) if (a.shortName().toLowerCase(Locale.ROOT).equals(k)) return a;
        throw new IllegalArgumentException("unknown algorithm '" + keyOrShortName + "'; valid keys: " + keys()
            + "; or short names: " + shortNames());
    }

    public static List<String> keys() {
        return ALL.stream().map(RegisteredAlgorithm::key).toList();
    }

    public static List<String> shortNames() {
        return ALL.stream().map(RegisteredAlgorithm::shortName).distinct().toList();
    }

    private static RegisteredAlgorithm subnetworkProbing(String key, String name, String shortName,
                                                         SubnetworkProbing.Options o) {
        return new RegisteredAlgorithm(key, name, shortName, true, parametersOf(o), run -> SubnetworkProbing.scores(run, o));
    }

    private static RegisteredAlgorithm circuitProbing(String key, String name, String shortName, CircuitProbing.Options o) {
        return new RegisteredAlgorithm(key, name, shortName, true, parametersOf(o), run -> CircuitProbing.scores(run, o));
    }

    /**
     * A parameter record as name → value for reports: every component, with empty collections left out and
     * non-primitive values as strings.
     */
    static Map<String, Object> parametersOf(Record options) {
        Map<String, Object> p = new LinkedHashMap<>();
        for (var c : options.getClass().getRecordComponents()) {
            Object v;
            try {
                v = c.getAccessor().invoke(options);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot read " + c.getName() + " of " + options, e);
            }
            if (v == null || (v instanceof java.util.Collection<?> col && col.isEmpty())) continue;
            p.put(c.getName(), v instanceof Number || v instanceof Boolean ? v : String.valueOf(v));
        }
        return p;
    }

    private static RegisteredAlgorithm maskGradient(String key, String name, String shortName, boolean listed,
                                                    GradFunction grad, AnswerFunction answer, Double maskVal, Integer igSamples) {
        MaskGradient.Options o = new MaskGradient.Options(grad, answer, maskVal, igSamples, AblationType.RESAMPLE,
            Ablations.CleanCorrupt.CORRUPT);
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("grad_function", grad.name().toLowerCase(Locale.ROOT));
        p.put("answer_function", answer.name().toLowerCase(Locale.ROOT));
        if (maskVal != null) p.put("mask_val", maskVal);
        if (igSamples != null) p.put("integrated_grad_samples", igSamples);
        p.put("ablation_type", o.ablationType().name());
        return new RegisteredAlgorithm(key, name, shortName, listed, p,
            run -> MaskGradient.scores(run.model(), run.train(), o, run.progress(), run.collective()));
    }

}
