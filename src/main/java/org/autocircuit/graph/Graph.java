package org.autocircuit.graph;

import java.util.AbstractList;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.RandomAccess;

/**
 * AutoCircuit's computation graph of a model: src nodes, dest nodes grouped into dest modules,
 * and the edges between them. Immutable and free of native resources, so it can be
 * shared by every model, algorithm and metric that talks about the same architecture.
 *
 * <h2>Edge order</h2>
 * {@link #edges()} lists, for each dest module in {@linkplain #destModules() canonical order},
 * its mask entries in row-major order {@code (seq, head, src)}. Flattening every dest module's
 * patch mask and concatenating them in that order therefore gives exactly one value per edge of
 * {@code edges()}, at the same position, which is what {@link PruneScores#flat()} relies on.
 * AutoCircuit itself iterates Python sets here, whose order is not reproducible.
 *
 * <h2>Canonical dest module order</h2>
 * By dest layer, then within a layer {@code q, k, v, attn_in, mlp_in, resid_mid, resid_post}
 * (micro model: {@code blocks.l.head_inputs} before {@code output}/{@code resids.l}). This is the
 * order the golden files use.
 *
 * <h2>Edges are materialised on demand</h2>
 * {@code edges()} is a random-access view that computes each {@link Edge} from its index, so
 * a pythia-2.8b token graph (millions of edges) costs no memory beyond its nodes.
 */
public final class Graph {

    private final boolean factorized;
    private final OptionalInt seqLen;
    private final List<SrcNode> srcs;
    private final List<DestNode> dests;
    private final List<SrcModule> srcModules;
    private final List<DestModule> destModules;
    private final Map<String, SrcModule> srcModuleByName;
    private final Map<String, Integer> destModuleIndex;
    private final Map<String, SrcNode> srcByName;
    private final Map<String, DestNode> destByName;
    /** moduleOffset[m] = index in edges() of dest module m's first edge; moduleOffset[M] = nEdges. */
    private final int[] moduleOffset;
    /** Shared OptionalInt per position so that edges built on demand allocate nothing else. */
    private final OptionalInt[] seqIdxs;
    private final int nEdges;
    private final List<Edge> edges;
    private final int hash;

    private Graph(boolean factorized, OptionalInt seqLen, List<SrcNode> srcs, List<DestNode> dests) {
        this.factorized = factorized;
        this.seqLen = seqLen;
        this.srcs = List.copyOf(srcs);
        this.dests = List.copyOf(dests);

        Map<String, SrcNode> srcNames = new HashMap<>();
        for (int i = 0; i < this.srcs.size(); i++) {
            SrcNode s = this.srcs.get(i);
            if (s.srcIdx() != i) {
                throw new IllegalStateException("src " + s.name() + " has srcIdx " + s.srcIdx() + " at position " + i);
            }
            if (i > 0 && s.layer() < this.srcs.get(i - 1).layer()) {
                throw new IllegalStateException("srcIdx must follow layer order, but " + s.name() + " precedes in layer");
            }
            if (srcNames.put(s.name(), s) != null) {
                throw new IllegalStateException("duplicate src name " + s.name());
            }
        }
        this.srcByName = Collections.unmodifiableMap(srcNames);
        this.srcModules = groupSrcModules(this.srcs);
        Map<String, SrcModule> srcModuleNames = new LinkedHashMap<>();
        for (SrcModule m : srcModules) {
            srcModuleNames.put(m.moduleName(), m);
        }
        this.srcModuleByName = Collections.unmodifiableMap(srcModuleNames);

        Map<String, DestNode> destNames = new HashMap<>();
        for (DestNode d : this.dests) {
            if (destNames.put(d.name(), d) != null) {
                throw new IllegalStateException("duplicate dest name " + d.name());
            }
        }
        this.destByName = Collections.unmodifiableMap(destNames);
        this.destModules = groupDestModules(this.dests, this.srcs, factorized, seqLen);
        Map<String, Integer> index = new HashMap<>();
        this.moduleOffset = new int[destModules.size() + 1];
        long total = 0;
        for (int m = 0; m < destModules.size(); m++) {
            DestModule dm = destModules.get(m);
            if (m > 0 && dm.layer() < destModules.get(m - 1).layer()) {
                throw new IllegalStateException("dest modules must be in layer order: " + dm.moduleName());
            }
            index.put(dm.moduleName(), m);
            moduleOffset[m] = (int) total;
            total += dm.maskNumel();
            if (total > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("graph has more than " + (Integer.MAX_VALUE - 8)
                        + " edges, too many to index with int");
            }
        }
        this.nEdges = (int) total;
        moduleOffset[destModules.size()] = nEdges;
        this.destModuleIndex = Collections.unmodifiableMap(index);
        this.seqIdxs = new OptionalInt[seqLen.orElse(0)];
        for (int s = 0; s < seqIdxs.length; s++) {
            seqIdxs[s] = OptionalInt.of(s);
        }
        this.edges = new EdgeList();
        this.hash = Objects.hash(factorized, seqLen, this.srcs, this.dests);
    }

    // ---- factories ----

    /**
     * The factorized graph of a TransformerLens model: every src feeds every dest of a
     * later layer, because each component's output stays a separate term of the residual stream.
     *
     * @param shape       layers, heads, MLP and parallel flags
     * @param separateQkv one dest per head for each of Q, K and V ({@code hook_q/k/v_input}), or a
     *                    single combined dest per head ({@code hook_attn_in})
     * @param seqLen      token positions for a token-level graph, or null for one edge per pair
     */
    public static Graph transformerFactorized(TransformerShape shape, boolean separateQkv, Integer seqLen) {
        Objects.requireNonNull(shape, "shape");
        OptionalInt seq = checkSeqLen(seqLen);
        int nLayers = shape.nLayers();
        int nHeads = shape.nHeads();
        List<SrcNode> srcs = new ArrayList<>();
        List<DestNode> dests = new ArrayList<>();
        srcs.add(new SrcNode("Resid Start", "blocks.0.hook_resid_pre", 0, 0));
        int lastLayer = 0;
        for (int b = 0; b < nLayers; b++) {
            // Sequential blocks take two graph layers, so the MLP can read its own block's heads.
            int attnLayer = shape.hasMlp() && !shape.parallelAttnMlp() ? 2 * b + 1 : b + 1;
            int mlpLayer = shape.parallelAttnMlp() ? attnLayer : attnLayer + 1;
            for (int h = 0; h < nHeads; h++) {
                srcs.add(new SrcNode("A" + b + "." + h, "blocks." + b + ".attn.hook_result", attnLayer, srcs.size(),
                        OptionalInt.of(h)));
            }
            if (shape.hasMlp()) {
                srcs.add(new SrcNode("MLP " + b, "blocks." + b + ".hook_mlp_out", mlpLayer, srcs.size()));
            }
            if (separateQkv) {
                for (String qkv : new String[] {"q", "k", "v"}) {
                    // grouped layout: K and V destinations per key/value head g, named A<b>.kv<g>.K / .V
                    boolean grouped = !qkv.equals("q") && shape.kvDestHeads() != nHeads;
                    for (int h = 0; h < (grouped ? shape.kvDestHeads() : nHeads); h++) {
                        dests.add(new DestNode("A" + b + "." + (grouped ? "kv" : "") + h + "." + qkv.toUpperCase(Locale.ROOT),
                                "blocks." + b + ".hook_" + qkv + "_input", attnLayer, OptionalInt.of(h), 0));
                    }
                }
            } else {
                if (shape.kvDestHeads() != nHeads) {
                    throw new IllegalArgumentException("the grouped K/V layout needs separate Q, K and V destinations");
                }
                for (int h = 0; h < nHeads; h++) {
                    dests.add(new DestNode("A" + b + "." + h, "blocks." + b + ".hook_attn_in", attnLayer,
                            OptionalInt.of(h), 0));
                }
            }
            if (shape.hasMlp()) {
                dests.add(new DestNode("MLP " + b, "blocks." + b + ".hook_mlp_in", mlpLayer, OptionalInt.empty(), 0));
            }
            lastLayer = shape.hasMlp() ? mlpLayer : attnLayer;
        }
        dests.add(new DestNode("Resid End", "blocks." + (nLayers - 1) + ".hook_resid_post", lastLayer + 1,
                OptionalInt.empty(), 0));
        return new Graph(true, seq, srcs, dests);
    }

    /**
     * The unfactorized ("residual", node-patching) graph of a TransformerLens model:
     * edges only join consecutive layers, through the residual checkpoints {@code hook_resid_mid}
     * and {@code hook_resid_post}, which are both a dest (their input is patched) and a src (the
     * patched output is re-emitted).
     *
     * @throws IllegalArgumentException for parallel attention+MLP, which has no resid_mid checkpoint
     */
    public static Graph transformerUnfactorized(TransformerShape shape, Integer seqLen) {
        Objects.requireNonNull(shape, "shape");
        if (shape.parallelAttnMlp()) {
            throw new IllegalArgumentException("the unfactorized graph needs sequential blocks, got " + shape);
        }
        OptionalInt seq = checkSeqLen(seqLen);
        int nLayers = shape.nLayers();
        List<SrcNode> srcs = new ArrayList<>();
        List<DestNode> dests = new ArrayList<>();
        int layer = 0;
        int minSrcIdx = 0;
        for (int b = 0; b < nLayers; b++) {
            int blockFirst = srcs.size();
            if (b == 0) {
                srcs.add(new SrcNode("Resid Start", "blocks.0.hook_resid_pre", layer, blockFirst));
            } else {
                srcs.add(new SrcNode("Resid Post " + (b - 1), "blocks." + (b - 1) + ".hook_resid_post", layer,
                        blockFirst));
            }
            for (int h = 0; h < shape.nHeads(); h++) {
                srcs.add(new SrcNode("A" + b + "." + h, "blocks." + b + ".attn.hook_result", layer, srcs.size(),
                        OptionalInt.of(h)));
            }
            if (shape.hasMlp()) {
                layer++;
                dests.add(new DestNode("Resid Mid " + b, "blocks." + b + ".hook_resid_mid", layer,
                        OptionalInt.empty(), blockFirst));
                minSrcIdx = srcs.size();
                srcs.add(new SrcNode("Resid Mid " + b, "blocks." + b + ".hook_resid_mid", layer, minSrcIdx));
                srcs.add(new SrcNode("MLP " + b, "blocks." + b + ".hook_mlp_out", layer, srcs.size()));
            } else {
                minSrcIdx = blockFirst;
            }
            layer++;
            String name = b == nLayers - 1 ? "Resid End" : "Resid Post " + b;
            dests.add(new DestNode(name, "blocks." + b + ".hook_resid_post", layer, OptionalInt.empty(), minSrcIdx));
        }
        return new Graph(false, seq, srcs, dests);
    }

    /**
     * The graph of AutoCircuit's {@code MicroModel}, a two-head toy model whose
     * outputs are known in closed form and which the deterministic tests are written against.
     *
     * @param nLayers    number of blocks (2 in AutoCircuit's tests)
     * @param factorized factorized graph (13 edges for 2 layers) or residual graph (6 edges)
     * @param seqLen     token positions, or null
     */
    public static Graph microModel(int nLayers, boolean factorized, Integer seqLen) {
        if (nLayers <= 0) {
            throw new IllegalArgumentException("nLayers must be positive, got " + nLayers);
        }
        OptionalInt seq = checkSeqLen(seqLen);
        final int nHeads = 2;
        List<SrcNode> srcs = new ArrayList<>();
        List<DestNode> dests = new ArrayList<>();
        if (factorized) {
            srcs.add(new SrcNode("Resid Start", "input", 0, 0));
            for (int l = 0; l < nLayers; l++) {
                for (int e = 0; e < nHeads; e++) {
                    srcs.add(new SrcNode("B" + l + "." + e, "blocks." + l + ".head_outputs", l + 1, srcs.size(),
                            OptionalInt.of(e)));
                }
                for (int e = 0; e < nHeads; e++) {
                    dests.add(new DestNode("B" + l + "." + e, "blocks." + l + ".head_inputs", l + 1,
                            OptionalInt.of(e), 0));
                }
            }
            dests.add(new DestNode("Resid End", "output", nLayers + 1, OptionalInt.empty(), 0));
        } else {
            for (int l = 0; l < nLayers; l++) {
                int minSrcIdx = srcs.size();
                if (l == 0) {
                    srcs.add(new SrcNode("Resid Start", "input", l, minSrcIdx));
                } else {
                    srcs.add(new SrcNode("Resid Post " + (l - 1), "resids." + (l - 1), l, minSrcIdx));
                }
                for (int e = 0; e < nHeads; e++) {
                    srcs.add(new SrcNode("B" + l + "." + e, "blocks." + l + ".head_outputs", l, srcs.size(),
                            OptionalInt.of(e)));
                }
                if (l == nLayers - 1) {
                    dests.add(new DestNode("Resid End", "output", l + 1, OptionalInt.empty(), minSrcIdx));
                } else {
                    dests.add(new DestNode("Resid Post " + l, "resids." + l, l + 1, OptionalInt.empty(), minSrcIdx));
                }
            }
        }
        return new Graph(factorized, seq, srcs, dests);
    }

    private static OptionalInt checkSeqLen(Integer seqLen) {
        if (seqLen == null) {
            return OptionalInt.empty();
        }
        if (seqLen <= 0) {
            throw new IllegalArgumentException("seqLen must be positive or null, got " + seqLen);
        }
        return OptionalInt.of(seqLen);
    }

    private static List<SrcModule> groupSrcModules(List<SrcNode> srcs) {
        Map<String, List<SrcNode>> byModule = new LinkedHashMap<>();
        for (SrcNode s : srcs) {
            byModule.computeIfAbsent(s.moduleName(), k -> new ArrayList<>()).add(s);
        }
        List<SrcModule> modules = new ArrayList<>();
        for (Map.Entry<String, List<SrcNode>> e : byModule.entrySet()) {
            List<SrcNode> nodes = e.getValue();
            SrcNode first = nodes.get(0);
            boolean headed = first.headIdx().isPresent();
            for (int i = 0; i < nodes.size(); i++) {
                SrcNode s = nodes.get(i);
                if (s.srcIdx() != first.srcIdx() + i) {
                    throw new IllegalStateException("src indices of module " + e.getKey() + " are not contiguous");
                }
                if (s.layer() != first.layer() || s.headIdx().isPresent() != headed) {
                    throw new IllegalStateException("srcs of module " + e.getKey() + " disagree on layer or head");
                }
            }
            modules.add(new SrcModule(e.getKey(), first.layer(), first.srcIdx(), nodes.size(), headed));
        }
        return List.copyOf(modules);
    }

    private static List<DestModule> groupDestModules(List<DestNode> dests, List<SrcNode> srcs, boolean factorized,
                                                     OptionalInt seqLen) {
        Map<String, List<DestNode>> byModule = new LinkedHashMap<>();
        for (DestNode d : dests) {
            byModule.computeIfAbsent(d.moduleName(), k -> new ArrayList<>()).add(d);
        }
        List<DestModule> modules = new ArrayList<>();
        for (Map.Entry<String, List<DestNode>> e : byModule.entrySet()) {
            List<DestNode> nodes = e.getValue();
            DestNode first = nodes.get(0);
            boolean headed = first.headIdx().isPresent();
            for (int i = 0; i < nodes.size(); i++) {
                DestNode d = nodes.get(i);
                if (d.layer() != first.layer() || d.minSrcIdx() != first.minSrcIdx()
                        || d.headIdx().isPresent() != headed) {
                    throw new IllegalStateException("dests of module " + e.getKey()
                            + " disagree on layer, minSrcIdx or head");
                }
                // The mask is indexed by headIdx (Edge.patchIdx), so row i must be head i.
                if (headed && d.headIdx().getAsInt() != i) {
                    throw new IllegalStateException("dest " + d.name() + " has headIdx " + d.headIdx().getAsInt()
                            + " at row " + i);
                }
            }
            // Because srcIdx follows layer order, the inputs of a dest are a contiguous range.
            int start = first.minSrcIdx();
            int nIn = 0;
            for (SrcNode s : srcs) {
                boolean feeds = factorized ? s.layer() < first.layer() : s.layer() + 1 == first.layer();
                if (feeds) {
                    if (s.srcIdx() != start + nIn) {
                        throw new IllegalStateException("inputs of " + e.getKey() + " are not the contiguous range from "
                                + start + ": found " + s.name());
                    }
                    nIn++;
                }
            }
            modules.add(new DestModule(e.getKey(), first.layer(), nodes, headed, start, nIn, seqLen));
        }
        return List.copyOf(modules);
    }

    // ---- structure ----

    /** True for the factorized graph (src.layer &lt; dest.layer), false for the residual graph. */
    public boolean factorized() {
        return factorized;
    }

    /** Token positions of a token-level graph; empty for a component graph. */
    public OptionalInt seqLen() {
        return seqLen;
    }

    /** All src nodes in srcIdx order ({@code srcs().get(i).srcIdx() == i}). */
    public List<SrcNode> srcs() {
        return srcs;
    }

    /** All dest nodes, in canonical dest-module order and head order within a module. */
    public List<DestNode> dests() {
        return dests;
    }

    /** Modules hosting src nodes, in src order. */
    public List<SrcModule> srcModules() {
        return srcModules;
    }

    /** Modules hosting dest nodes, in canonical order (see the class comment). */
    public List<DestModule> destModules() {
        return destModules;
    }

    /** Number of src nodes: the first dimension of the stacked src-output tensor. */
    public int nSrcs() {
        return srcs.size();
    }

    /** Number of edges (all positions included): the sum of every dest module's mask size. */
    public int nEdges() {
        return nEdges;
    }

    /** The dest module with this hook name. */
    public DestModule destModule(String moduleName) {
        Integer m = moduleName == null ? null : destModuleIndex.get(moduleName);
        if (m == null) {
            throw new IllegalArgumentException("unknown dest module '" + moduleName + "'; valid: "
                    + destModuleNames());
        }
        return destModules.get(m);
    }

    /** The dest module with this hook name, or empty. */
    public Optional<DestModule> destModuleOrEmpty(String moduleName) {
        Integer m = moduleName == null ? null : destModuleIndex.get(moduleName);
        return m == null ? Optional.empty() : Optional.of(destModules.get(m));
    }

    /** The src module with this hook name. */
    public SrcModule srcModule(String moduleName) {
        SrcModule m = moduleName == null ? null : srcModuleByName.get(moduleName);
        if (m == null) {
            throw new IllegalArgumentException("unknown src module '" + moduleName + "'; valid: "
                    + srcModuleByName.keySet());
        }
        return m;
    }

    /** The src module with this hook name, or empty. */
    public Optional<SrcModule> srcModuleOrEmpty(String moduleName) {
        return Optional.ofNullable(moduleName == null ? null : srcModuleByName.get(moduleName));
    }

    /** The src node with this name. */
    public SrcNode src(String name) {
        SrcNode s = name == null ? null : srcByName.get(name);
        if (s == null) {
            throw new IllegalArgumentException("unknown src node '" + name + "'");
        }
        return s;
    }

    /** The dest node with this name. */
    public DestNode dest(String name) {
        DestNode d = name == null ? null : destByName.get(name);
        if (d == null) {
            throw new IllegalArgumentException("unknown dest node '" + name + "'");
        }
        return d;
    }

    /** Dest module names in canonical order. */
    public List<String> destModuleNames() {
        List<String> names = new ArrayList<>(destModules.size());
        for (DestModule m : destModules) {
            names.add(m.moduleName());
        }
        return Collections.unmodifiableList(names);
    }

    /** Index of a dest module in {@link #destModules()}, or -1. */
    int destModuleIndexOf(String moduleName) {
        Integer m = destModuleIndex.get(moduleName);
        return m == null ? -1 : m;
    }

    /** Index in {@link #edges()} of the first edge into dest module {@code m}. */
    int moduleOffset(int m) {
        return moduleOffset[m];
    }

    // ---- edges ----

    /** Every edge, in mask-flattening order (see the class comment). Random access, computed on demand. */
    public List<Edge> edges() {
        return edges;
    }

    /**
     * Position of {@code e} in {@link #edges()}, by arithmetic on its patch index.
     *
     * @throws IllegalArgumentException if the edge is not part of this graph
     */
    public int edgeIndex(Edge e) {
        Objects.requireNonNull(e, "edge");
        int m = destModuleIndexOf(e.dest().moduleName());
        if (m < 0) {
            throw notInGraph(e);
        }
        DestModule dm = destModules.get(m);
        int row = e.dest().headIdx().orElse(0);
        int col = e.src().srcIdx() - dm.inSrcStart();
        if (row >= dm.rows() || !dm.nodes().get(row).equals(e.dest())
                || col < 0 || col >= dm.nIn() || !srcs.get(e.src().srcIdx()).equals(e.src())
                || e.seqIdx().isPresent() != seqLen.isPresent()
                || (seqLen.isPresent() && e.seqIdx().getAsInt() >= seqLen.getAsInt())) {
            throw notInGraph(e);
        }
        int s = e.seqIdx().orElse(0);
        return moduleOffset[m] + s * dm.perSeq() + row * dm.nIn() + col;
    }

    private IllegalArgumentException notInGraph(Edge e) {
        return new IllegalArgumentException("edge " + e + " is not in this graph (" + this + ")");
    }

    /**
     * The edge with this name at this position ({@code seqIdx} must be present exactly when the
     * graph has a {@code seqLen}).
     *
     * @throws IllegalArgumentException naming the edge if there is no such edge
     */
    public Edge edge(String name, OptionalInt seqIdx) {
        Objects.requireNonNull(seqIdx, "seqIdx");
        int[] mc = locate(name);
        if (mc == null) {
            throw new IllegalArgumentException("no edge named '" + name + "' in " + this);
        }
        if (seqIdx.isPresent() != seqLen.isPresent()
                || (seqIdx.isPresent() && (seqIdx.getAsInt() < 0 || seqIdx.getAsInt() >= seqLen.getAsInt()))) {
            throw new IllegalArgumentException("edge '" + name + "' has no position " + seqIdx + " in " + this);
        }
        return edges.get(mc[0] + seqIdx.orElse(0) * mc[1]);
    }

    /** The edge with this name in a component graph (no token positions). */
    public Edge edge(String name) {
        return edge(name, OptionalInt.empty());
    }

    /** True if an edge of this name exists (at any position). */
    public boolean containsEdgeNamed(String name) {
        return locate(name) != null;
    }

    /**
     * Every edge with this name, one per token position (a single edge in a component graph), in
     * position order.
     *
     * @throws IllegalArgumentException naming the edge if there is none
     */
    public List<Edge> edgesNamed(String name) {
        int[] mc = locate(name);
        if (mc == null) {
            throw new IllegalArgumentException("no edge named '" + name + "' in " + this);
        }
        int n = seqLen.orElse(1);
        List<Edge> out = new ArrayList<>(n);
        for (int s = 0; s < n; s++) {
            out.add(edges.get(mc[0] + s * mc[1]));
        }
        return Collections.unmodifiableList(out);
    }

    /** Positions in {@link #edges()} of every edge with this name (ascending). */
    int[] edgeIndicesNamed(String name) {
        int[] mc = locate(name);
        if (mc == null) {
            throw new IllegalArgumentException("no edge named '" + name + "' in " + this);
        }
        int[] out = new int[seqLen.orElse(1)];
        for (int s = 0; s < out.length; s++) {
            out[s] = mc[0] + s * mc[1];
        }
        return out;
    }

    /**
     * {index of the position-0 edge, stride between positions} for an edge name, or null.
     * Node names never contain "->", so the name splits unambiguously.
     */
    private int[] locate(String name) {
        if (name == null) {
            return null;
        }
        int arrow = name.indexOf("->");
        if (arrow < 0) {
            return null;
        }
        SrcNode s = srcByName.get(name.substring(0, arrow));
        DestNode d = destByName.get(name.substring(arrow + 2));
        if (s == null || d == null) {
            return null;
        }
        int m = destModuleIndex.get(d.moduleName());
        DestModule dm = destModules.get(m);
        int col = s.srcIdx() - dm.inSrcStart();
        if (col < 0 || col >= dm.nIn()) {
            return null;
        }
        int row = d.headIdx().orElse(0);
        return new int[] {moduleOffset[m] + row * dm.nIn() + col, dm.perSeq()};
    }

    /** Random-access view that builds each edge from its index. */
    private final class EdgeList extends AbstractList<Edge> implements RandomAccess {

        @Override
        public Edge get(int index) {
            if (index < 0 || index >= nEdges) {
                throw new IndexOutOfBoundsException("edge index " + index + " out of [0, " + nEdges + ")");
            }
            // Offsets are strictly increasing (every mask is non-empty): an exact hit is that
            // module's first edge, otherwise the insertion point follows the owning module.
            int m = Arrays.binarySearch(moduleOffset, index);
            if (m < 0) {
                m = -m - 2;
            }
            DestModule dm = destModules.get(m);
            int r = index - moduleOffset[m];
            int s = r / dm.perSeq();
            r -= s * dm.perSeq();
            int row = r / dm.nIn();
            int col = r - row * dm.nIn();
            return new Edge(srcs.get(dm.inSrcStart() + col), dm.nodes().get(row),
                    seqLen.isPresent() ? seqIdxs[s] : OptionalInt.empty());
        }

        @Override
        public int size() {
            return nEdges;
        }
    }

    // ---- value semantics ----

    /** Graphs are equal when they have the same kind, positions, srcs and dests (which fix the edges). */
    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        return o instanceof Graph g && hash == g.hash && factorized == g.factorized && seqLen.equals(g.seqLen)
                && srcs.equals(g.srcs) && dests.equals(g.dests);
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public String toString() {
        return "Graph[" + (factorized ? "factorized" : "unfactorized")
                + (seqLen.isPresent() ? ", seqLen=" + seqLen.getAsInt() : "")
                + ", srcs=" + srcs.size() + ", dests=" + dests.size() + ", destModules=" + destModules.size()
                + ", edges=" + nEdges + "]";
    }
}
