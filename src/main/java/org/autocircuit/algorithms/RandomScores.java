package org.autocircuit.algorithms;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * Random scores, the baseline every algorithm must beat: each edge scores U[0, 1).
 *
 * <p>The numbers come from libtorch's CPU generator (a Mersenne twister), seeded with the run's seed, drawn mask by
 * mask in the graph's canonical module order. A private generator is used, so the global torch RNG is left alone.
 * The same seed gives the same scores; and since AutoCircuit draws with {@code torch.rand_like} from the global
 * generator after {@code torch.manual_seed(seed)}, drawing in AutoCircuit's module order reproduces its numbers
 * exactly (tested against its golden file). AutoCircuit's own order is that of a Python set and changes between
 * processes, so the canonical order is used here.
 */
public final class RandomScores {
    private RandomScores() {}

    /** The {@link PruneAlgorithm} form: seeded with {@code run.seed()}. */
    public static PruneScores scores(PruneRun run) {
        return scores(run.model().graph(), run.seed());
    }

    public static PruneScores scores(Graph graph, long seed) {
        return scores(graph, seed, graph.destModuleNames());
    }

    /** Draws the masks in {@code drawOrder} (a permutation of the graph's destination module names). */
    static PruneScores scores(Graph graph, long seed, List<String> drawOrder) {
        if (drawOrder.size() != graph.destModules().size() || !drawOrder.containsAll(graph.destModuleNames())) {
            throw new IllegalArgumentException("drawOrder " + drawOrder + " is not a permutation of " + graph.destModuleNames());
        }
        Map<String, float[]> drawn = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            Generator generator = torch.createCPUGenerator(seed);
            for (String name : drawOrder) {
                DestModule dm = graph.destModule(name);
                drawn.put(name, HostTensor.of(torch.rand(dm.maskShape(), new GeneratorOptional(generator))).floats());
            }
        }
        return PruneScores.of(graph, drawn);
    }
}
