package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.OfficialCircuit;
import org.autocircuit.graph.OfficialCircuit.Group;
import org.autocircuit.graph.OfficialCircuit.Kind;
import org.autocircuit.graph.OfficialCircuit.Positions;
import org.autocircuit.graph.TransformerShape;

/**
 * The published circuits, written down once as rules (head classes and the connections between them, as the papers
 * and AutoCircuit's {@code official_circuits} describe them) and expanded into the explicit edge lists of
 * {@code datasets/official-circuits/*.json}. The files are what the library reads; this class is how they were made,
 * and a test checks that the committed files equal its output.
 *
 * <p>Rules name edges by the cross product of node lists, as the papers do ("every MLP between the two classes");
 * names that do not exist in the model the circuit was found in (an MLP feeding an earlier MLP, ...) are dropped
 * here, against that model's graph shape, so every name in a file is a real edge of that model.
 */
public final class OfficialCircuitDefinitions {

    /** GPT-2 small: 12 blocks of 12 heads. */
    public static final TransformerShape GPT2_SMALL = TransformerShape.sequential(12, 12);
    /** {@code attn-only-4l} (Attn_Only_4L512W_C4_Code): 4 attention-only blocks of 8 heads. */
    public static final TransformerShape ATTN_ONLY_4L = TransformerShape.attnOnly(4, 8);
    /** pythia-2.8b-deduped: 32 parallel blocks of 32 heads. */
    public static final TransformerShape PYTHIA_2_8B = TransformerShape.parallel(32, 32);
    /** tracr-reverse: 4 blocks of one head. */
    public static final TransformerShape TRACR_REVERSE = TransformerShape.sequential(4, 1);
    /** tracr-xproportion: 2 blocks of one head. */
    public static final TransformerShape TRACR_XPROPORTION = TransformerShape.sequential(2, 1);

    private OfficialCircuitDefinitions() {
    }

    /** Every circuit, keyed by its file name without {@code .json}. */
    public static Map<String, OfficialCircuit> all() {
        Map<String, OfficialCircuit> out = new LinkedHashMap<>();
        for (OfficialCircuit c : List.of(ioi(), ioiMlp0(), ioiHeads(), docstring(), docstringHeads(), greaterThan(),
                sportsPlayers(), sportsPlayersProbe(), tracrReverse(), tracrReverseAcdc(), tracrXproportion(),
                tracrXproportionAcdc())) {
            out.put(c.name(), c);
        }
        return out;
    }

    // ---- IOI (Wang et al. 2022; edge set as in ACDC's and AutoCircuit's ioi_true_edges) ----

    private static final String IOI_SOURCE = "Wang et al. 2022, Interpretability in the Wild (arXiv:2211.00593); "
        + "edge set as defined by Conmy et al. (ACDC) with token positions as in AutoCircuit's ioi_official.py";

    /** The IOI head classes, [layer, head] pairs, in the paper's order of importance. */
    static final Map<String, int[][]> IOI_CLASSES = new LinkedHashMap<>();

    static {
        IOI_CLASSES.put("name mover", new int[][] {{9, 9}, {10, 0}, {9, 6}});
        IOI_CLASSES.put("backup name mover", new int[][] {{10, 10}, {10, 6}, {10, 2}, {10, 1}, {11, 2}, {9, 7}, {9, 0}, {11, 9}});
        IOI_CLASSES.put("negative", new int[][] {{10, 7}, {11, 10}});
        IOI_CLASSES.put("s2 inhibition", new int[][] {{7, 3}, {7, 9}, {8, 6}, {8, 10}});
        IOI_CLASSES.put("induction", new int[][] {{5, 5}, {5, 8}, {5, 9}, {6, 9}});
        IOI_CLASSES.put("duplicate token", new int[][] {{0, 1}, {0, 10}, {3, 0}});
        IOI_CLASSES.put("previous token", new int[][] {{2, 2}, {4, 11}});
    }

    private record Conn(String from, String to, String[][] letterAt) {
    }

    private static final String INPUT = "INPUT";
    private static final String OUTPUT = "OUTPUT";

    /** Which class reads from which, and which input (q/k/v) at which word; OUTPUT reads at "end". */
    private static final List<Conn> IOI_CONNECTIONS = List.of(
        new Conn(INPUT, "previous token", new String[][] {{"q", "S1+1"}, {"k", "S1"}, {"v", "S1"}}),
        new Conn(INPUT, "duplicate token", new String[][] {{"q", "S2"}, {"k", "S1"}, {"v", "S1"}}),
        new Conn(INPUT, "s2 inhibition", new String[][] {{"q", "end"}}),
        new Conn(INPUT, "negative", new String[][] {{"k", "IO"}, {"v", "IO"}}),
        new Conn(INPUT, "name mover", new String[][] {{"k", "IO"}, {"v", "IO"}}),
        new Conn(INPUT, "backup name mover", new String[][] {{"k", "IO"}, {"v", "IO"}}),
        new Conn("previous token", "induction", new String[][] {{"k", "S1+1"}, {"v", "S1+1"}}),
        new Conn("induction", "s2 inhibition", new String[][] {{"k", "S2"}, {"v", "S2"}}),
        new Conn("duplicate token", "s2 inhibition", new String[][] {{"k", "S2"}, {"v", "S2"}}),
        new Conn("s2 inhibition", "negative", new String[][] {{"q", "end"}}),
        new Conn("s2 inhibition", "name mover", new String[][] {{"q", "end"}}),
        new Conn("s2 inhibition", "backup name mover", new String[][] {{"q", "end"}}),
        new Conn("negative", OUTPUT, new String[][] {{null, "end"}}),
        new Conn("name mover", OUTPUT, new String[][] {{null, "end"}}),
        new Conn("backup name mover", OUTPUT, new String[][] {{null, "end"}}));

    /**
     * The IOI circuit: every connection between head classes, plus every MLP between them (the paper lets
     * activations flow through MLPs), at the positions where the reading head attends.
     *
     * <p>AutoCircuit computes the upper MLP layer of the connections into OUTPUT from the {@code end} token index
     * rather than a layer: 0 without positions (no MLPs), and past the last layer for every IOI prompt (end ≥ 12),
     * so token circuits get every MLP from the class's first layer on. The file reproduces both: those MLP edges form
     * groups marked {@code "component": false} (component circuit 739 edges, vanilla token circuit 869).
     */
    public static OfficialCircuit ioi() {
        Template t = new Template(Graph.transformerFactorized(GPT2_SMALL, true, null));
        for (Conn c : IOI_CONNECTIONS) {
            List<String> srcs = new ArrayList<>();
            List<String[]> dests = new ArrayList<>();   // {name, word}
            if (c.from().equals(INPUT)) {
                srcs.add("Resid Start");
            } else {
                for (int[] lh : IOI_CLASSES.get(c.from())) srcs.add(head(lh));
            }
            if (c.to().equals(OUTPUT)) {
                dests.add(new String[] {"Resid End", "end"});
            } else {
                for (int[] lh : IOI_CLASSES.get(c.to())) {
                    for (String[] la : c.letterAt()) dests.add(new String[] {head(lh) + "." + la[0].toUpperCase(), la[1]});
                }
            }
            int srcLayer = c.from().equals(INPUT) ? 0 : minLayer(IOI_CLASSES.get(c.from()));
            boolean toOutput = c.to().equals(OUTPUT);
            int destLayer = toOutput ? GPT2_SMALL.nLayers() : maxLayer(IOI_CLASSES.get(c.to()));
            List<String> mlpSrcs = new ArrayList<>();
            List<String[]> mlpDests = new ArrayList<>();
            for (int layer = srcLayer; layer < destLayer; layer++) {
                for (String[] la : c.letterAt()) {
                    mlpSrcs.add("MLP " + layer);
                    mlpDests.add(new String[] {"MLP " + layer, la[1]});
                }
            }
            // Component-level edges: classes and (except into OUTPUT) their MLPs.
            List<String> allSrcs = new ArrayList<>(srcs);
            List<String[]> allDests = new ArrayList<>(dests);
            if (!toOutput) {
                allSrcs.addAll(mlpSrcs);
                allDests.addAll(mlpDests);
            }
            for (String s : allSrcs) {
                for (String[] d : allDests) t.add(s + "->" + d[0], d[1], true);
            }
            if (toOutput) {
                allSrcs.addAll(mlpSrcs);
                allDests.addAll(mlpDests);
                for (String s : allSrcs) {
                    for (String[] d : allDests) t.add(s + "->" + d[0], d[1], false);
                }
            }
        }
        return t.build("ioi", "Indirect Object Identification circuit (edges)", IOI_SOURCE, "gpt2-small", true,
            List.of("IO", "S1", "S1+1", "S2", "end"), Kind.EDGES);
    }

    /** {@link #ioi()} keeping only edges that touch no MLP or MLP 0 (AutoCircuit's {@code ioi_true_edges_mlp_0_only}). */
    public static OfficialCircuit ioiMlp0() {
        OfficialCircuit full = ioi();
        List<Group> groups = new ArrayList<>();
        for (Group g : full.groups()) {
            List<String> kept = new ArrayList<>();
            for (String n : g.names()) if (n.contains("MLP 0") || !n.contains("MLP")) kept.add(n);
            if (!kept.isEmpty()) groups.add(new Group(g.at(), g.component(), kept));
        }
        return new OfficialCircuit("ioi-mlp0", "IOI circuit with MLP 0 as the only MLP", IOI_SOURCE
            + "; MLPs other than MLP 0 removed as in AutoCircuit's ioi_true_edges_mlp_0_only", "gpt2-small", true, true,
            full.wordPositions(), Kind.EDGES, groups);
    }

    /**
     * The node-based IOI circuit (AutoCircuit's {@code ioi_head_based_official_edges}): the paper mean-ablates whole
     * heads, so every edge out of a circuit head at its position is kept, and every edge out of Resid Start or an MLP.
     */
    public static OfficialCircuit ioiHeads() {
        Map<String, String> keepAt = new LinkedHashMap<>();
        keepAt.put("name mover", "end");
        keepAt.put("backup name mover", "end");
        keepAt.put("negative", "end");
        keepAt.put("s2 inhibition", "end");
        keepAt.put("induction", "S2");
        keepAt.put("duplicate token", "S2");
        keepAt.put("previous token", "S1+1");
        Map<String, List<String>> byWord = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : keepAt.entrySet()) {
            for (int[] lh : IOI_CLASSES.get(e.getKey())) byWord.computeIfAbsent(e.getValue(), k -> new ArrayList<>()).add(head(lh));
        }
        List<Group> groups = new ArrayList<>();
        byWord.forEach((w, heads) -> groups.add(new Group(new Positions.Listed(List.of(w)), true, heads)));
        return new OfficialCircuit("ioi-heads", "Indirect Object Identification circuit (heads)", IOI_SOURCE
            + "; node-based variant as AutoCircuit's ioi_head_based_official_edges", "gpt2-small", true, true,
            List.of("S1+1", "S2", "end"), Kind.HEADS, groups);
    }

    // ---- Docstring (Heimersheim & Janiak 2023) ----

    private static final String DOCSTRING_SOURCE = "Heimersheim & Janiak 2023, A circuit for Python docstrings in a "
        + "4-layer attention-only transformer (Alignment Forum); edge set from the ACDC repository, token positions as "
        + "in AutoCircuit's docstring_official.py";

    private static final List<String> DOCSTRING_WORDS = List.of("A_def", "B_def", ",_B", "C_def", "A_doc", "B_doc",
        "param_3");

    /** The docstring circuit's 24 edges with their token positions. */
    public static OfficialCircuit docstring() {
        Template t = new Template(Graph.transformerFactorized(ATTN_ONLY_4L, true, null));
        t.add("A0.5->A1.4.V", List.of("B_def", "B_doc"));
        t.add("Resid Start->A0.5.V", List.of("B_def", "C_def", "B_doc"));
        t.add("Resid Start->A2.0.Q", List.of("C_def"));
        t.add("A0.5->A2.0.Q", List.of("C_def"));
        t.add("Resid Start->A2.0.K", List.of());   // in the component circuit only: ',_B' does not vary
        t.add("A0.5->A2.0.K", List.of("B_def"));
        t.add("A1.4->A2.0.V", List.of(",_B"));
        t.add("Resid Start->A1.4.V", List.of("B_def", "B_doc"));
        t.add("Resid Start->A1.2.K", List.of("A_def", "B_def", "A_doc", "B_doc"));
        t.add("Resid Start->A1.2.Q", List.of("A_doc", "B_doc"));
        t.add("A0.5->A1.2.Q", List.of("B_doc"));
        t.add("A0.5->A1.2.K", List.of("B_def", "B_doc"));
        for (String h : List.of("0", "6")) {
            t.add("A3." + h + "->Resid End", List.of("param_3"));
            t.add("A1.4->A3." + h + ".Q", List.of("param_3"));
            t.add("Resid Start->A3." + h + ".V", List.of("C_def"));
            t.add("A0.5->A3." + h + ".V", List.of("C_def"));
            t.add("A2.0->A3." + h + ".K", List.of("C_def"));
            t.add("A1.2->A3." + h + ".K", List.of("A_doc", "B_doc"));
        }
        return t.build("docstring", "Docstring circuit (edges)", DOCSTRING_SOURCE, "attn-only-4l", true,
            DOCSTRING_WORDS, Kind.EDGES);
    }

    /** The node-based docstring circuit (AutoCircuit's {@code docstring_node_based_official_edges}). */
    public static OfficialCircuit docstringHeads() {
        List<Group> groups = new ArrayList<>();
        groups.add(new Group(new Positions.Listed(List.of(",_B")), true, List.of("A1.4")));
        groups.add(new Group(new Positions.Listed(List.of("C_def")), true, List.of("A2.0")));
        groups.add(new Group(new Positions.Listed(List.of("param_3")), true, List.of("A3.0", "A3.6", "A0.4")));
        groups.add(new Group(new Positions.Listed(List.of("B_def", "C_def", "B_doc")), true, List.of("A0.5")));
        groups.add(new Group(new Positions.Listed(List.of("A_doc", "B_doc")), true, List.of("A1.2")));
        groups.add(new Group(new Positions.Listed(List.of("B_doc")), true, List.of("A0.2")));
        // The post gives no positions for these extra heads: every position from B_def to param_3.
        groups.add(new Group(new Positions.Span("B_def", "param_3", true), true, List.of("A1.0", "A0.1", "A2.3")));
        return new OfficialCircuit("docstring-heads", "Docstring circuit (heads)", DOCSTRING_SOURCE
            + "; node-based variant as AutoCircuit's docstring_node_based_official_edges", "attn-only-4l", true, true,
            DOCSTRING_WORDS, Kind.HEADS, groups);
    }

    // ---- Greater-than (Hanna et al. 2023) ----

    /** The greater-than circuit (235 edges); the paper gives no positions, so token circuits keep every position. */
    public static OfficialCircuit greaterThan() {
        Map<String, int[][]> groups = new LinkedHashMap<>();   // {layer, head or -1 for the MLP}
        groups.put("ATTN_0.3_0.5", new int[][] {{0, 3}, {0, 5}});
        groups.put("ATTN_0.1", new int[][] {{0, 1}});
        groups.put("EARLY_MLPS", new int[][] {{0, -1}, {1, -1}, {2, -1}, {3, -1}});
        groups.put("MID_ATTNS", new int[][] {{5, 5}, {6, 1}, {6, 9}, {7, 10}, {8, 11}, {9, 1}});
        groups.put("LATE_MLPS", new int[][] {{8, -1}, {9, -1}, {10, -1}, {11, -1}});
        String[][] connected = {{"ATTN_0.1", "EARLY_MLPS"}, {"ATTN_0.1", "MID_ATTNS"}, {"ATTN_0.3_0.5", "MID_ATTNS"},
            {"EARLY_MLPS", "MID_ATTNS"}, {"MID_ATTNS", "LATE_MLPS"}};
        Template t = new Template(Graph.transformerFactorized(GPT2_SMALL, true, null));
        for (String g : List.of("ATTN_0.3_0.5", "ATTN_0.1", "EARLY_MLPS")) {
            for (int[] n : groups.get(g)) for (String d : destNames(n)) t.addAll("Resid Start->" + d);
        }
        for (String g : List.of("MID_ATTNS", "LATE_MLPS")) {
            for (int[] n : groups.get(g)) t.addAll(srcName(n) + "->Resid End");
        }
        for (String g : List.of("EARLY_MLPS", "LATE_MLPS")) {
            for (int[] s : groups.get(g)) {
                for (int[] d : groups.get(g)) if (s[0] < d[0]) t.addAll("MLP " + s[0] + "->MLP " + d[0]);
            }
        }
        for (String[] pair : connected) {
            for (int[] s : groups.get(pair[0])) {
                for (int[] d : groups.get(pair[1])) {
                    boolean attnToMlpSameLayer = s[1] >= 0 && d[1] < 0 && s[0] == d[0];
                    if (s[0] >= d[0] && !attnToMlpSameLayer) continue;
                    for (String dn : destNames(d)) t.addAll(srcName(s) + "->" + dn);
                }
            }
        }
        int maxMidLayer = 0;
        for (int[] n : groups.get("MID_ATTNS")) maxMidLayer = Math.max(maxMidLayer, n[0]);
        for (int s = 0; s < maxMidLayer; s++) {
            for (int d = s + 1; d < maxMidLayer; d++) t.addAll("MLP " + s + "->MLP " + d);
        }
        for (int[] n : groups.get("MID_ATTNS")) {
            for (int s = 0; s < n[0]; s++) t.addAll("MLP " + s + "->" + srcName(n) + ".Q");
        }
        return t.build("greater-than", "Greater-than circuit", "Hanna et al. 2023, How does GPT-2 compute greater-than? "
            + "(arXiv:2305.00586); edge set from the ACDC repository, as in AutoCircuit's greaterthan_official.py",
            "gpt2-small", true, List.of(), Kind.EDGES);
    }

    private static List<String> destNames(int[] n) {
        if (n[1] < 0) return List.of("MLP " + n[0]);
        return List.of(srcName(n) + ".Q", srcName(n) + ".K", srcName(n) + ".V");
    }

    private static String srcName(int[] n) {
        return n[1] < 0 ? "MLP " + n[0] : "A" + n[0] + "." + n[1];
    }

    // ---- Sports players (Rajamanoharan et al. 2023) ----

    private static final String SPORTS_SOURCE = "Rajamanoharan et al. 2023, Fact Finding: Simplifying the Circuit "
        + "(Alignment Forum, post 2); edge set as in AutoCircuit's sports_players_official.py";

    /** The sports-players circuit: token concatenation and lookup, then sport extraction (token circuit: 4,518 edges). */
    public static OfficialCircuit sportsPlayers() {
        return sports(false);
    }

    /** The lookup part only, with the MLP stack extended to the last layer ({@code sports_players_probe_true_edges}). */
    public static OfficialCircuit sportsPlayersProbe() {
        return sports(true);
    }

    private static OfficialCircuit sports(boolean probe) {
        Template t = new Template(Graph.transformerFactorized(PYTHIA_2_8B, false, null));
        List<String> heads01 = new ArrayList<>();
        for (int l = 0; l < 2; l++) for (int h = 0; h < PYTHIA_2_8B.nHeads(); h++) heads01.add("A" + l + "." + h);
        // Concatenate the name's tokens: every edge among the first layers at the earlier name tokens.
        List<String> early = new ArrayList<>(List.of("Resid Start", "MLP 0"));
        early.addAll(heads01);
        Positions nonFinal = new Positions.Span("first_name_tok", "final_name_tok", false);
        for (String s : early) for (String d : early) t.add(s + "->" + d, nonFinal);
        // Look the player up: every edge among the first layers and the MLP stack at the final name token.
        List<String> lookup = new ArrayList<>(List.of("Resid Start"));
        lookup.addAll(heads01);
        for (int l = 0; l < (probe ? PYTHIA_2_8B.nLayers() : 16); l++) lookup.add("MLP " + l);
        for (String s : lookup) for (String d : lookup) t.add(s + "->" + d, "final_name_tok", true);
        if (!probe) {
            // Extract the sport: the lookup feeds A16.20, which feeds the other sport heads; all of them write the answer.
            String main = "A16.20";
            for (String s : lookup) t.add(s + "->" + main, "final_name_tok", true);
            List<String> secondary = List.of("A21.9", "A22.17", "A22.15", "A17.30", "A19.24");
            for (String h : secondary) t.add(main + "->" + h, "final_name_tok", true);
            t.add(main + "->Resid End", "end", true);
            for (String h : secondary) t.add(h + "->Resid End", "end", true);
        }
        return t.build(probe ? "sports-players-probe" : "sports-players",
            probe ? "Sports players circuit (lookup only)" : "Sports players circuit", SPORTS_SOURCE,
            "pythia-2.8b-deduped", false, List.of("first_name_tok", "final_name_tok", "end"), Kind.EDGES);
    }

    // ---- tracr ----

    private static final List<Object> REVERSE_POSITIONS = List.of(1, 2, 4, 5);
    private static final List<Object> XPROPORTION_POSITIONS = List.of(1, 2, 3, 4, 5);

    /** tracr-reverse, the edges that must be kept under resample ablation (8 token edges at length 5 + BOS). */
    public static OfficialCircuit tracrReverse() {
        return literal("tracr-reverse", "tracr reverse (resample-ablation circuit)", "Miller et al., as in "
            + "AutoCircuit's tracr/reverse_official.py", "tracr-reverse", TRACR_REVERSE, REVERSE_POSITIONS,
            List.of("Resid Start->A3.0.V", "A3.0->Resid End"));
    }

    /** tracr-reverse as ACDC defines it (zero-ablation circuit). */
    public static OfficialCircuit tracrReverseAcdc() {
        return literal("tracr-reverse-acdc", "tracr reverse (ACDC / zero-ablation circuit)", "Conmy et al. 2023 "
            + "(ACDC, arXiv:2304.14997), as in AutoCircuit's tracr_reverse_acdc_edges", "tracr-reverse", TRACR_REVERSE,
            REVERSE_POSITIONS, List.of("A3.0->Resid End", "MLP 2->A3.0.Q", "Resid Start->A3.0.K",
                "Resid Start->A3.0.V", "MLP 1->MLP 2", "MLP 0->MLP 1", "Resid Start->MLP 1", "A0.0->MLP 0",
                "Resid Start->MLP 0", "Resid Start->A0.0.V"));
    }

    /** tracr-xproportion, the resample-ablation circuit (15 token edges). */
    public static OfficialCircuit tracrXproportion() {
        return literal("tracr-xproportion", "tracr x-proportion (resample-ablation circuit)", "Miller et al., as in "
            + "AutoCircuit's tracr/xproportion_official.py", "tracr-xproportion", TRACR_XPROPORTION,
            XPROPORTION_POSITIONS, List.of("Resid Start->MLP 0", "MLP 0->A1.0.V", "A1.0->Resid End"));
    }

    /** tracr-xproportion as ACDC defines it. */
    public static OfficialCircuit tracrXproportionAcdc() {
        return literal("tracr-xproportion-acdc", "tracr x-proportion (ACDC / zero-ablation circuit)", "Conmy et al. "
            + "2023 (ACDC), as in AutoCircuit's tracr_xproportion_acdc_edges", "tracr-xproportion", TRACR_XPROPORTION,
            XPROPORTION_POSITIONS, List.of("A1.0->Resid End", "Resid Start->A1.0.Q", "Resid Start->A1.0.K",
                "MLP 0->A1.0.V", "Resid Start->MLP 0"));
    }

    private static OfficialCircuit literal(String name, String title, String source, String model,
                                           TransformerShape shape, List<Object> positions, List<String> edges) {
        Template t = new Template(Graph.transformerFactorized(shape, true, null));
        for (String e : edges) t.add(e, new Positions.Listed(positions));
        return t.build(name, title, source, model, true, List.of(), Kind.EDGES);
    }

    // ---- helpers ----

    private static String head(int[] lh) {
        return "A" + lh[0] + "." + lh[1];
    }

    private static int minLayer(int[][] heads) {
        int m = Integer.MAX_VALUE;
        for (int[] lh : heads) m = Math.min(m, lh[0]);
        return m;
    }

    private static int maxLayer(int[][] heads) {
        int m = Integer.MIN_VALUE;
        for (int[] lh : heads) m = Math.max(m, lh[0]);
        return m;
    }

    /**
     * Accumulates edge name → positions, dropping names the reference graph lacks, then groups names that share
     * positions (in first-seen order) into a circuit.
     */
    private static final class Template {
        private final Graph reference;
        /** name → listed word positions of component groups, in order. */
        private final Map<String, Set<Object>> component = new LinkedHashMap<>();
        /** name → listed word positions that only token circuits get. */
        private final Map<String, Set<Object>> tokenOnly = new LinkedHashMap<>();
        /** names with every position, or with spans. */
        private final Map<String, List<Positions>> other = new LinkedHashMap<>();
        private final List<String> order = new ArrayList<>();

        Template(Graph reference) {
            this.reference = reference;
        }

        private boolean keep(String name) {
            if (!reference.containsEdgeNamed(name)) return false;
            if (!order.contains(name)) order.add(name);
            return true;
        }

        void add(String name, Object position, boolean isComponent) {
            if (!keep(name)) return;
            (isComponent ? component : tokenOnly).computeIfAbsent(name, k -> new LinkedHashSet<>()).add(position);
        }

        void add(String name, List<?> positions) {
            if (!keep(name)) return;
            Set<Object> at = component.computeIfAbsent(name, k -> new LinkedHashSet<>());
            at.addAll(positions);
        }

        void add(String name, Positions positions) {
            if (positions instanceof Positions.Listed l) {
                add(name, l.items());
                return;
            }
            if (!keep(name)) return;
            List<Positions> list = other.computeIfAbsent(name, k -> new ArrayList<>());
            if (!list.contains(positions)) list.add(positions);
        }

        void addAll(String name) {
            add(name, new Positions.All());
        }

        OfficialCircuit build(String name, String title, String source, String model, boolean separateQkv,
                              List<String> words, Kind kind) {
            // group key → names, first-seen order
            Map<List<Object>, List<String>> groups = new LinkedHashMap<>();
            for (String n : order) {
                List<Positions> spans = other.getOrDefault(n, List.of());
                Set<Object> listed = component.getOrDefault(n, Set.of());
                // A name only in span/"all" groups, or only in token circuits, needs no listed component group.
                if (component.containsKey(n) && (!listed.isEmpty() || spans.isEmpty())) {
                    groups.computeIfAbsent(List.of(new Positions.Listed(new ArrayList<>(listed)), true),
                        k -> new ArrayList<>()).add(n);
                }
                for (Positions p : spans) groups.computeIfAbsent(List.of(p, true), k -> new ArrayList<>()).add(n);
                Set<Object> extra = new LinkedHashSet<>(tokenOnly.getOrDefault(n, Set.of()));
                extra.removeAll(listed);
                if (!extra.isEmpty()) {
                    groups.computeIfAbsent(List.of(new Positions.Listed(new ArrayList<>(extra)), false),
                        k -> new ArrayList<>()).add(n);
                }
            }
            List<Group> out = new ArrayList<>();
            groups.forEach((k, names) -> out.add(new Group((Positions) k.get(0), (Boolean) k.get(1), names)));
            return new OfficialCircuit(name, title, source, model, reference.factorized(), separateQkv, words, kind, out);
        }
    }
}
