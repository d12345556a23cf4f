package org.autocircuit.testing;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.PatchableModel;

/**
 * Random scores that rank every edge into one block above all others, so that the smallest circuits are patched in
 * that block only: tests of run_circuits' shortcuts use them to make passes start at a chosen block.
 *
 * @param scores     10 + a uniform draw for the block's edges, a uniform draw in [0, 1) for the rest
 * @param blockEdges how many edges end in the block (the circuits of up to this many edges stay inside it)
 */
public record BlockScores(PruneScores scores, int blockEdges) {

    /** Scores favouring the destinations of block {@code block}, drawn from {@code seed}. */
    public static BlockScores favouring(PatchableModel model, int block, long seed) {
        String prefix = "blocks." + block + ".";
        Map<String, float[]> byModule = new LinkedHashMap<>();
        Random random = new Random(seed);
        int blockEdges = 0;
        for (String module : model.maskNames()) {
            float[] s = new float[(int) model.mask(module).numel()];
            boolean inBlock = module.startsWith(prefix);
            if (inBlock) blockEdges += s.length;
            for (int i = 0; i < s.length; i++) s[i] = (inBlock ? 10f : 0f) + random.nextFloat();
            byModule.put(module, s);
        }
        return new BlockScores(PruneScores.of(model.graph(), byModule), blockEdges);
    }
}
