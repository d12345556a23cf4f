package org.autocircuit.distributed;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A launched worker for {@link DataParallelSearchTest}: probes the fixture model on its rank (one process per rank,
 * as launched runs are: libtorch's random generator is per process, so ranks that are threads of one JVM would
 * interleave their draws) and rank 0 writes the masks and the loss curve, one value per line.
 */
public final class ProbingWorker {
    private ProbingWorker() {}

    public static void main(String[] args) throws Exception {
        String which = args[0];
        Path out = Path.of(args[1]);
        try (Collective c = ProcessGroupCollective.fromEnvironment()) {
            DataParallelSearchTest.Probed p = DataParallelSearchTest.probe(which, c);
            if (c.isLeader()) Files.write(out, lines(p));
        } catch (DistributedException e) {
            System.err.println("worker: " + e.getMessage());
            System.exit(1);
        }
    }

    static List<String> lines(DataParallelSearchTest.Probed p) {
        List<String> lines = new ArrayList<>();
        lines.add("allReduces " + p.allReduces());
        for (float m : p.masks()) lines.add("mask " + m);
        for (float s : p.scores()) lines.add("score " + s);
        for (double l : p.losses()) lines.add("loss " + l);
        return lines;
    }
}
