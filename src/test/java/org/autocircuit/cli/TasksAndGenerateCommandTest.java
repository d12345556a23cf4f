package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Tasks;
import org.autocircuit.tasks.generators.IoiGenerator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TasksAndGenerateCommandTest {

    private static String captureOut(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.execute(args));
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void tasksJsonListsEveryTaskWithAvailability(@TempDir Path emptyModels) throws Exception {
        JsonNode rows = new ObjectMapper().readTree(captureOut("tasks", "--json", "--models-root", emptyModels.toString()));
        assertEquals(Tasks.ALL.size(), rows.size());
        for (JsonNode r : rows) {
            if (r.get("key").asText().equals("ioi-tiny")) assertTrue(r.get("available").asBoolean(), r.toString());
            if (r.get("key").asText().equals("ioi-token")) {
                assertTrue(!r.get("available").asBoolean() && r.get("dataset_available").asBoolean(), r.toString());
                assertTrue(r.get("model_folder").asText().startsWith(emptyModels.toString()), r.toString());
            }
        }
        assertTrue(captureOut("tasks").contains("ioi-tiny"));
    }

    /** {@code tasks --model DIR}: the bundled GPT-2 model runs its IOI task, not the word-vocabulary one's. */
    @Test
    void tasksWithModelSaysWhichTasksRunWithIt() throws Exception {
        Path gpt2 = org.autocircuit.testing.Fixtures.modelDir();
        JsonNode rows = new ObjectMapper().readTree(captureOut("tasks", "--json", "--model", gpt2.toString()));
        int checked = 0;
        for (JsonNode r : rows) {
            JsonNode w = r.get("with_model");
            assertEquals(gpt2.toString(), w.get("model_folder").asText());
            if (r.get("key").asText().equals("ioi-tiny")) {
                assertTrue(w.get("runs").asBoolean() && w.get("reason").isNull(), w.toString());
                assertEquals("GPT2LMHeadModel", w.get("architecture").asText());
                checked++;
            }
            if (r.get("key").asText().equals("induction-2l")) {
                assertTrue(!w.get("runs").asBoolean() && w.get("reason").asText().startsWith("dataset with this tokenizer"),
                    w.toString());
                checked++;
            }
        }
        assertEquals(2, checked);
        String table = captureOut("tasks", "--model", gpt2.toString());
        assertTrue(table.contains("with gpt2-tiny-random"), table);
    }

    @Test
    void generateWritesTheGeneratorOutput(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("ioi.json");
        captureOut("generate", "ioi", "--n", "12", "--seed", "3", "--template", "abba:2", "--out", out.toString());
        assertEquals(new IoiGenerator("abba:2").generate(12, 3), Datasets.readFile(out));
        assertEquals(2, Main.execute("generate", "greater-than", "--template", "abba:2", "--out", out.toString()));
        assertEquals(2, Main.execute("generate", "nope", "--out", out.toString()));
        captureOut("generate", "official-circuits", "--out", tmp.resolve("c").toString());
        assertTrue(Files.isRegularFile(tmp.resolve("c/ioi.json")));
    }
}
