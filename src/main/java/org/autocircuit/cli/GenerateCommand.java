package org.autocircuit.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.autocircuit.graph.OfficialCircuit;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.generators.DatasetGenerator;
import org.autocircuit.tasks.generators.DatasetGenerators;
import org.autocircuit.tasks.generators.IoiGenerator;
import org.autocircuit.tasks.generators.OfficialCircuitDefinitions;
import picocli.CommandLine.Command;
import java.util.List;
import org.autocircuit.util.AtomicFiles;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Writes a dataset JSON file from a prompt generator, or regenerates the official-circuit files.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = {"Generate a dataset in AutoCircuit's JSON format: ioi, greater-than or docstring.",
        "`generate official-circuits --out DIR` rewrites the official-circuit files."})
final class GenerateCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "WHAT", description = "ioi, greater-than, docstring or official-circuits")
    String what;

    @Option(names = "--n", defaultValue = "256", description = "Number of prompt pairs (default ${DEFAULT-VALUE}).")
    int n;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--template", defaultValue = "vanilla",
        description = "IOI only: vanilla, baba:K, abba:K (K = 0..14) or mixed (default ${DEFAULT-VALUE}).")
    String template;

    @Option(names = "--out", required = true, description = "Output file (a folder for official-circuits).")
    Path out;

    @Option(names = "--force", description = "Replace an existing --out file (official circuits: files that are not "
        + "official-circuit files this tool wrote).")
    boolean force;

    @Override
    public Integer call() throws Exception {
        if (what.equals("official-circuits")) {
            for (OfficialCircuit c : OfficialCircuitDefinitions.all().values()) {
                Outputs.check(out.resolve(c.name() + ".json"), "--out", force, Outputs.OFFICIAL_CIRCUIT, List.of());
            }
            for (OfficialCircuit c : OfficialCircuitDefinitions.all().values()) {
                Path file = out.resolve(c.name() + ".json");
                c.write(file);
                System.out.println("wrote " + file + " (" + c.nameCount() + " " + c.kind().name().toLowerCase() + ")");
            }
            return 0;
        }
        DatasetGenerator g = DatasetGenerators.byKey(what);
        if (g instanceof IoiGenerator) {
            g = new IoiGenerator(template);
        } else if (!template.equals("vanilla")) {
            throw new IllegalArgumentException("--template applies to ioi only, not " + g.key());
        }
        Outputs.check(out, "--out", force, AtomicFiles.Ownership.NONE, List.of());
        DatasetFile data = g.generate(n, seed);
        Datasets.write(out, data);
        System.out.println("wrote " + out + ": " + data.prompts().size() + " " + g.key() + " prompt pairs (seed " + seed
            + (data.wordIdxs().isEmpty() ? "" : ", word_idxs " + data.wordIdxs()) + ")");
        return 0;
    }
}
