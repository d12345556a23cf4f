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
import org.autocircuit.tasks.TaskCompatibility;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tasks;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Lists the tasks, the model folder and dataset each needs, and whether both are present; with {@code --model DIR},
 * also whether each task can run with that model ({@link TaskCompatibility}).
 */
@Command(name = "tasks", mixinStandardHelpOptions = true,
    description = {"List the tasks: key, name, model folder needed, dataset, and whether they are available locally.",
        "With --model DIR: whether each task's dataset runs with that model (its architecture loads, its tokenizer "
            + "keeps every answer one token, every id fits its vocabulary)."})
final class TasksCommand implements Callable<Integer> {

    @Option(names = "--models-root", description = "Folder holding pretrained model folders (default: <home>/models).")
    Path modelsRoot;

    @Option(names = "--model", paramLabel = "DIR",
        description = "A model folder (Hugging Face format) to check every task against.")
    Path model;

    @Option(names = "--json", description = "Print JSON.") boolean json;

    @Override
    public Integer call() throws Exception {
        TaskPaths paths = TaskPaths.under(Main.home());
        if (modelsRoot != null) paths = paths.withModelsRoot(modelsRoot);
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Task t : Tasks.ALL) {
            Path taskModel = t.modelPath(paths);
            Path data = t.datasetPath(paths);
            boolean modelThere = Files.isRegularFile(taskModel.resolve("config.json"))
                && Files.isRegularFile(taskModel.resolve("model.safetensors"));
            boolean dataThere = Files.isRegularFile(data);
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("key", t.key());
            r.put("autocircuit_key", t.autocircuitKey());
            r.put("name", t.name());
            r.put("model", t.modelName());
            r.put("model_folder", taskModel.toString());
            r.put("model_folder_holds", t.modelDescription());
            r.put("dataset", data.toString());
            r.put("token_circuit", t.tokenCircuit());
            r.put("official_circuit", t.officialCircuit());
            r.put("model_available", modelThere);
            r.put("dataset_available", dataThere);
            r.put("available", t.unsupported() == null && modelThere && dataThere);
            r.put("unsupported", t.unsupported());
            if (model != null) {
                TaskCompatibility c = TaskCompatibility.check(t, paths, model);
                Map<String, Object> w = new LinkedHashMap<>();
                w.put("model_folder", model.toString());
                w.put("runs", c.runs());
                w.put("reason", c.reason());
                w.put("architecture", c.architecture());
                w.put("tokenizer", c.tokenizer());
                w.put("note", c.note());
                r.put("with_model", w);
            }
            rows.add(r);
        }
        if (json) {
            System.out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(rows));
            return 0;
        }
        System.out.printf("%-38s %-9s %-24s %-22s %-26s%s%n", "key", "circuit", "model folder", "dataset", "available",
            model == null ? "" : "with " + model.getFileName());
        for (Map<String, Object> r : rows) {
            String status = r.get("unsupported") != null ? "no: unsupported"
                : (Boolean) r.get("available") ? "yes"
                : !(Boolean) r.get("model_available") ? "no: model folder missing" : "no: dataset missing";
            String with = "";
            if (model != null) {
                @SuppressWarnings("unchecked")
                Map<String, Object> w = (Map<String, Object>) r.get("with_model");
                with = (Boolean) w.get("runs") ? "yes" : "no: " + firstLine((String) w.get("reason"));
            }
            System.out.printf("%-38s %-9s %-24s %-22s %-26s%s%n", r.get("key"), (Boolean) r.get("token_circuit") ? "token" : "component",
                shortPath((String) r.get("model_folder")), Path.of((String) r.get("dataset")).getFileName(), status, with);
        }
        System.out.println();
        System.out.println("Model folders are resolved under " + paths.modelsRoot() + " (--models-root DIR); each holds a "
            + "Hugging Face model (config.json + model.safetensors). `autocircuit tasks --json` gives full paths and "
            + "reasons." + (model == null ? " `--model DIR` checks every task against a model folder." : ""));
        return 0;
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    private static String shortPath(String p) {
        Path path = Path.of(p);
        int n = path.getNameCount();
        return n >= 2 ? path.subpath(n - 2, n).toString() : p;
    }
}
