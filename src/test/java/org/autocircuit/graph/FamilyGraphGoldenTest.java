package org.autocircuit.graph;

import static org.autocircuit.graph.GraphGoldenTest.assertDestModules;
import static org.autocircuit.graph.GraphGoldenTest.assertDestNodes;
import static org.autocircuit.graph.GraphGoldenTest.assertEdges;
import static org.autocircuit.graph.GraphGoldenTest.assertSrcNodes;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.testing.FamilyFixtures;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The graphs of the Llama (GQA, ungrouped layout: one K and one V destination per query head) and NeoX (parallel
 * attention and MLP: one graph layer per block) fixtures, built from their config.json alone, agree exactly with the
 * ones AutoCircuit built (families/*&#47;golden/graph.json): node order, dest modules and mask shapes, every edge's
 * patch_idx.
 */
@Tag("golden")
class FamilyGraphGoldenTest {

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"llama", "neox"})
    void componentAndTokenGraphsMatchAutoCircuit(String family) throws Exception {
        JsonNode root = FamilyFixtures.golden(family, "graph.json");
        ModelConfig cfg = ModelConfig.fromHuggingFace(FamilyFixtures.modelDir(family).resolve("config.json"));
        for (String kind : new String[] {"component", "token"}) {
            JsonNode golden = root.get(kind);
            Integer seqLen = kind.equals("token") ? golden.get("seq_len").asInt() : null;
            Graph g = Graph.transformerFactorized(cfg.shape(), true, seqLen);
            String at = family + " " + kind;
            assertEquals(golden.get("n_src_nodes").asInt(), g.nSrcs(), at + " sources");
            assertEquals(golden.get("n_dest_nodes").asInt(), g.dests().size(), at + " destinations");
            assertEquals(golden.get("n_edges").asInt(), g.nEdges(), at + " edges");
            assertEquals(golden.get("n_dest_modules").asInt(), g.destModules().size(), at + " dest modules");
            assertSrcNodes(golden.get("src_nodes"), g);
            assertDestNodes(golden.get("dest_nodes"), g);
            assertDestModules(golden.get("dest_modules"), g);
            if (golden.has("edges")) assertEdges(golden.get("edges"), g);
            if (golden.has("edges_per_seq_idx")) {
                java.util.Map<Integer, Integer> perSeq = new java.util.HashMap<>();
                for (Edge e : g.edges()) perSeq.merge(e.seqIdx().getAsInt(), 1, Integer::sum);
                assertEquals(golden.get("edges_per_seq_idx").size(), perSeq.size(), at + " positions");
                golden.get("edges_per_seq_idx").fields().forEachRemaining(e -> assertEquals(e.getValue().asInt(),
                    perSeq.get(Integer.parseInt(e.getKey())), at + " edges at position " + e.getKey()));
            }
        }
    }
}
