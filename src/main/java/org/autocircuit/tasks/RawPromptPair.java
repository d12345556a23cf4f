package org.autocircuit.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.TextNode;
import java.util.List;
import org.autocircuit.data.PromptPair;

/**
 * One entry of a dataset file's {@code "prompts"} list, as raw JSON values: prompts are
 * strings (tokenized models) or nested lists of numbers (micro model, tracr); answers are lists of
 * strings or numbers. {@link Datasets#load} turns these into {@link PromptPair}s.
 *
 * <p>Jackson nodes are mutable, so this record stores deep copies and hands out deep copies.
 */
public record RawPromptPair(JsonNode clean, JsonNode corrupt, JsonNode answers, JsonNode wrongAnswers) {

    public RawPromptPair {
        if (clean == null || corrupt == null || answers == null || wrongAnswers == null) {
            throw new IllegalArgumentException("clean, corrupt, answers and wrongAnswers must not be null");
        }
        if (!answers.isArray() || !wrongAnswers.isArray()) {
            throw new IllegalArgumentException("answers and wrong_answers must be JSON lists, got " + answers.getNodeType()
                + " and " + wrongAnswers.getNodeType());
        }
        clean = clean.deepCopy();
        corrupt = corrupt.deepCopy();
        answers = answers.deepCopy();
        wrongAnswers = wrongAnswers.deepCopy();
    }

    /** A text prompt pair, as the dataset generators of tokenized tasks write them. */
    public static RawPromptPair ofText(String clean, String corrupt, List<String> answers, List<String> wrongAnswers) {
        return new RawPromptPair(TextNode.valueOf(clean), TextNode.valueOf(corrupt), strings(answers), strings(wrongAnswers));
    }

    private static ArrayNode strings(List<String> values) {
        ArrayNode a = JsonNodeFactory.instance.arrayNode();
        values.forEach(a::add);
        return a;
    }

    @Override public JsonNode clean() { return clean.deepCopy(); }

    @Override public JsonNode corrupt() { return corrupt.deepCopy(); }

    @Override public JsonNode answers() { return answers.deepCopy(); }

    @Override public JsonNode wrongAnswers() { return wrongAnswers.deepCopy(); }
}
