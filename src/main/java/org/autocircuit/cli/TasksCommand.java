package org.autocircuit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tasks;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Lists the tasks, the model folder and dataset each needs, and whether both are present. */
@Command(name = "tasks", mixinStandardHelpOptions = true,
    description = "List the tasks: key, name, model folder needed, dataset, and whether they are available locally.")
final class TasksCommand implements Callable<Integer> {

    @Option(names = "--models-root", description = "Folder holding pretrained model folders (default: <home>/models).")
    Path modelsRoot;

    @Option(names = "--json", description = "Print JSON.") boolean json;

    @Override
    public Integer call() throws Exception {
        TaskPaths paths = TaskPaths.under(Main.home());
        if (modelsRoot != null) paths = paths.withModelsRoot(modelsRoot);
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Task t : Tasks.ALL) {
            Path model = t.modelPath(paths);
            Path data = t.datasetPath(paths);
            boolean modelThere = Files.isRegularFile(model.resolve("config.json"))
                && Files.isRegularFile(model.resolve("model.safetensors"));
            boolean dataThere = Files.isRegularFile(data);
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("key", t.key());
            r.put("autocircuit_key", t.autocircuitKey());
            r.put("name", t.name());
            r.put("model", t.modelName());
            r.put("model_folder", model.toString());
            r.put("model_folder_holds", t.modelDescription());
            r.put("dataset", data.toString());
            r.put("token_circuit", t.tokenCircuit());
            r.put("official_circuit", t.officialCircuit());
            r.put("model_available", modelThere);
            r.put("dataset_available", dataThere);
            r.put("available", t.unsupported() == null && modelThere && dataThere);
            r.put("unsupported", t.unsupported());
            rows.add(r);
        }
        if (json) {
            System.out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(rows));
            return 0;
        }
        System.out.printf("%-38s %-9s %-24s %-22s %s%n", "key", "circuit", "model folder", "dataset", "available");
        for (Map<String, Object> r : rows) {
            String status = r.get("unsupported") != null ? "no: unsupported"
                : (Boolean) r.get("available") ? "yes"
                : !(Boolean) r.get("model_available") ? "no: model folder missing" : "no: dataset missing";
            System.out.printf("%-38s %-9s %-24s %-22s %s%n", r.get("key"), (Boolean) r.get("token_circuit") ? "token" : "component",
                shortPath((String) r.get("model_folder")), Path.of((String) r.get("dataset")).getFileName(), status);
        }
        System.out.println();
        System.out.println("Model folders are resolved under " + paths.modelsRoot() + " (--models-root DIR); each holds a "
            + "Hugging Face model (config.json + model.safetensors). `autocircuit tasks --json` gives full paths and "
            + "reasons.");
        return 0;
    }

    private static String shortPath(String p) {
        Path path = Path.of(p);
        int n = path.getNameCount();
        return n >= 2 ? path.subpath(n - 2, n).toString() : p;
    }
}
