package org.autocircuit.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * The BOS and PAD tokens of a Hugging Face tokenizer folder, and whether the family adds BOS by itself.
 *
 * <p>The rule (docs/tokenizers.md):
 * <ul>
 *   <li><b>BOS</b> = {@code bos_token} of {@code tokenizer_config.json}; else the special token that the
 *       {@code TemplateProcessing} post-processor of {@code tokenizer.json} puts before the text (Llama 3's
 *       {@code <|begin_of_text|>}); else {@code eos_token}; else {@code <|endoftext|>} when the tokenizer has it.
 *       The last two are TransformerLens's fallbacks (it sets a missing BOS to EOS, and a missing EOS to
 *       {@code <|endoftext|>}), which AutoCircuit inherits: a Qwen2 folder ({@code bos_token: null}) gets
 *       {@code <|endoftext|>}.</li>
 *   <li><b>PAD</b> = {@code pad_token}; else EOS (as above); else BOS.</li>
 *   <li><b>Adds BOS by default</b> = {@code add_bos_token} of {@code tokenizer_config.json} when it is given (it
 *       overrides the template in Hugging Face's Llama/Gemma tokenizers); else whether the post-processor template
 *       starts with a special token. Llama, Mistral and Gemma: yes; GPT-2, Pythia and Qwen2: no. It is reported,
 *       not acted on: encoding never adds special tokens, and with {@code prepend_bos} the loader puts exactly one
 *       BOS in front of every prompt, for every family.</li>
 * </ul>
 *
 * @param bos             the BOS token's text
 * @param bosId           its id
 * @param bosSource       where the BOS choice came from, for messages
 * @param eos             the EOS token's text, or null when the folder names none
 * @param padId           the id used for left padding
 * @param addsBosByDefault whether the family's own tokenizer adds BOS when asked for special tokens
 */
public record SpecialTokens(String bos, long bosId, String bosSource, String eos, long padId, boolean addsBosByDefault) {

    static final String END_OF_TEXT = "<|endoftext|>";

    /**
     * Applies the rule above.
     *
     * @param tokenizerJson the parsed {@code tokenizer.json}
     * @param config        the parsed {@code tokenizer_config.json}, or null when the folder has none
     * @param encode        the tokenizer's encoder without special tokens, to find a token's id
     */
    static SpecialTokens resolve(JsonNode tokenizerJson, JsonNode config, Path configFile, Path tokenizerFile,
                                 Function<String, long[]> encode) {
        String configBos = tokenText(config, "bos_token", configFile);
        String configEos = tokenText(config, "eos_token", configFile);
        String configPad = tokenText(config, "pad_token", configFile);
        String templateBos = templateFirstSpecial(tokenizerJson.path("post_processor"));
        boolean hasEndOfText = false;
        for (JsonNode t : tokenizerJson.path("added_tokens")) hasEndOfText |= END_OF_TEXT.equals(t.path("content").asText());
        String eos = configEos != null ? configEos : hasEndOfText ? END_OF_TEXT : null;

        String bos;
        String source;
        if (configBos != null) {
            bos = configBos;
            source = configFile.getFileName() + " bos_token";
        } else if (templateBos != null) {
            bos = templateBos;
            source = tokenizerFile.getFileName() + " post_processor";
        } else if (eos != null) {
            bos = eos;
            source = (configEos != null ? configFile.getFileName() + " eos_token" : tokenizerFile.getFileName() + " "
                + END_OF_TEXT) + " (no BOS token: EOS stands in, as in TransformerLens)";
        } else {
            throw new IllegalArgumentException(configFile + ": no BOS token: field 'bos_token' and 'eos_token' are "
                + "missing or null, " + tokenizerFile.getFileName() + " has no post_processor template with a special "
                + "token and no " + END_OF_TEXT + " token");
        }
        String bosField = configBos != null ? configFile + ": field 'bos_token'"
            : templateBos != null ? tokenizerFile + ": field 'post_processor'" : configFile + ": field 'eos_token'";
        long bosId = singleId(bos, bosField, encode, tokenizerFile);
        String pad = configPad != null ? configPad : eos != null ? eos : bos;
        String padField = configPad != null ? configFile + ": field 'pad_token'" : configFile + ": field 'eos_token'";
        long padId = pad.equals(bos) ? bosId : singleId(pad, padField, encode, tokenizerFile);

        JsonNode addBos = config == null ? null : config.get("add_bos_token");
        boolean addsBos;
        if (addBos != null && !addBos.isNull()) {
            if (!addBos.isBoolean()) {
                throw new IllegalArgumentException(configFile + ": field 'add_bos_token' must be true or false, got " + addBos);
            }
            addsBos = addBos.asBoolean();
        } else {
            addsBos = templateBos != null;
        }
        return new SpecialTokens(bos, bosId, source, eos, padId, addsBos);
    }

    /** A token field of tokenizer_config.json: a string, an object with {@code content} (AddedToken), or null. */
    private static String tokenText(JsonNode config, String field, Path configFile) {
        if (config == null) return null;
        JsonNode v = config.get(field);
        if (v == null || v.isNull()) return null;
        if (v.isTextual()) return v.asText();
        if (v.isObject() && v.path("content").isTextual()) return v.path("content").asText();
        throw new IllegalArgumentException(configFile + ": field '" + field + "' must be a string, an object with "
            + "'content', or null; got " + v);
    }

    /** The special token a TemplateProcessing post-processor (possibly inside a Sequence) puts before {@code $A}. */
    private static String templateFirstSpecial(JsonNode post) {
        if (post == null || post.isNull() || post.isMissingNode()) return null;
        String type = post.path("type").asText();
        if (type.equals("Sequence")) {
            for (JsonNode p : post.path("processors")) {
                String s = templateFirstSpecial(p);
                if (s != null) return s;
            }
            return null;
        }
        if (!type.equals("TemplateProcessing")) return null;  // BERT-style processors put [CLS], not BOS; ByteLevel none
        JsonNode first = post.path("single").path(0);
        JsonNode special = first.path("SpecialToken");
        return special.path("id").isTextual() ? special.path("id").asText() : null;
    }

    private static long singleId(String token, String field, Function<String, long[]> encode, Path tokenizerFile) {
        long[] ids = encode.apply(token);
        if (ids.length != 1) {
            throw new IllegalArgumentException(field + " is '" + token + "', which " + tokenizerFile.getFileName()
                + " does not hold as one token (it encodes to " + ids.length + " tokens)");
        }
        return ids[0];
    }
}
