package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.RawPromptPair;
import org.autocircuit.tasks.Tokenizer;

/**
 * Indirect Object Identification prompts (Wang et al. 2022, "Interpretability in the Wild", arXiv:2211.00593):
 * "When Mary and John went to the store, John gave a drink to" → " Mary" (the indirect object, IO), not " John"
 * (the subject, S). The corrupt prompt is the paper's ABC distribution: the same sentence with three other names, so
 * it carries no information about which name to repeat.
 *
 * <p>Templates: {@code vanilla} (the sentence above, as in AutoCircuit's {@code ioi_vanilla_template_prompts}), or
 * one of the paper's 15 templates in BABA order (S first) or ABBA order (IO first): {@code baba:0} … {@code baba:14},
 * {@code abba:0} … {@code abba:14}, or {@code mixed} (a random template and order per prompt). Names, places and
 * objects are single GPT-2 tokens, so clean and corrupt prompts have the same length, and every prompt of one
 * template has the same token layout, which is what token-position circuits need; single-template files therefore
 * carry {@code word_idxs} (IO, S1, S1+1, S2, end, …, before BOS) and {@code seq_labels}.
 */
public final class IoiGenerator implements DatasetGenerator {

    /** The vanilla template; [A] is the indirect object, [B] the subject. */
    static final String VANILLA = "When [A] and [B] went to the [PLACE], [B] gave a [OBJECT] to";

    /** The paper's templates in BABA order (the subject first); the prompt ends before the final " [A]". */
    static final List<String> BABA_TEMPLATES = List.of(
        "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
        "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
        "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
        "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
        "Then, [B] and [A] had a long argument, and afterwards [B] said to",
        "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
        "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
        "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
        "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
        "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
        "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
        "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
        "Then, [B] and [A] had a long argument. Afterwards [B] said to",
        "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
        "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to");

    /** First names from the paper's name list; each is one GPT-2 token after a space. */
    static final List<String> NAMES = List.of("Michael", "Christopher", "Jessica", "Matthew", "Ashley", "Jennifer",
        "Joshua", "Amanda", "Daniel", "David", "James", "Robert", "John", "Joseph", "Andrew", "Ryan", "Brandon", "Jason",
        "Justin", "Sarah", "William", "Jonathan", "Stephanie", "Brian", "Nicole", "Nicholas", "Anthony", "Heather",
        "Eric", "Elizabeth", "Adam", "Megan", "Melissa", "Kevin", "Steven", "Thomas", "Timothy", "Christina", "Kyle",
        "Rachel", "Laura", "Lauren", "Amber", "Brittany", "Danielle", "Richard", "Kimberly", "Jeffrey", "Amy",
        "Crystal", "Michelle", "Tiffany", "Jeremy", "Benjamin", "Mark", "Emily", "Aaron", "Charles", "Rebecca", "Jacob",
        "Stephen", "Patrick", "Sean", "Erin", "Jamie", "Kelly", "Samantha", "Nathan", "Sara", "Dustin", "Paul",
        "Angela", "Tyler", "Scott", "Katherine", "Andrea", "Gregory", "Erica", "Mary", "Travis", "Lisa", "Kenneth",
        "Bryan", "Lindsey", "Kristen", "Jose", "Alexander", "Jesse", "Katie", "Lindsay", "Shannon", "Vanessa",
        "Courtney", "Christine", "Alicia", "Cody", "Allison", "Bradley", "Samuel");

    static final List<String> PLACES = List.of("store", "garden", "restaurant", "school", "hospital", "office", "house",
        "station");

    static final List<String> OBJECTS = List.of("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink",
        "snack");

    private static final Pattern SLOT = Pattern.compile(" ?\\[(A|B|C|PLACE|OBJECT)\\]");

    private final String template;
    private final Tokenizer tok = new Gpt2Tokenizer();

    /** The vanilla template. */
    public IoiGenerator() {
        this("vanilla");
    }

    /**
     * @param template {@code vanilla}, {@code baba:K}, {@code abba:K} (K in 0..14) or {@code mixed}
     * @throws IllegalArgumentException for any other value
     */
    public IoiGenerator(String template) {
        String t = template == null ? "" : template.trim().toLowerCase(java.util.Locale.ROOT);
        if (!t.equals("vanilla") && !t.equals("mixed") && templateText(t) == null) {
            throw new IllegalArgumentException("unknown IOI template '" + template + "'; valid: vanilla, mixed, baba:0.."
                + (BABA_TEMPLATES.size() - 1) + ", abba:0.." + (BABA_TEMPLATES.size() - 1));
        }
        this.template = t;
    }

    @Override public String key() { return "ioi"; }

    @Override
    public String description() {
        return "Indirect Object Identification (Wang et al. 2022): '" + VANILLA.replace("[A]", "Mary").replace("[B]", "John")
            .replace("[PLACE]", "store").replace("[OBJECT]", "drink") + "' -> ' Mary'; corrupt = three other names (ABC)";
    }

    /** The template text for {@code vanilla}, {@code baba:K} or {@code abba:K}; null otherwise. */
    static String templateText(String t) {
        if (t.equals("vanilla")) return VANILLA;
        Matcher m = Pattern.compile("(abba|baba):(\\d{1,2})").matcher(t);
        if (!m.matches()) return null;
        int k = Integer.parseInt(m.group(2));
        if (k >= BABA_TEMPLATES.size()) return null;
        String baba = BABA_TEMPLATES.get(k);
        return m.group(1).equals("baba") ? baba : abba(baba);
    }

    /** BABA → ABBA: the first two names swap, so the indirect object comes first. */
    static String abba(String baba) {
        int b = baba.indexOf("[B]");
        int a = baba.indexOf("[A]");
        return baba.substring(0, b) + "[A]" + baba.substring(b + 3, a) + "[B]" + baba.substring(a + 3);
    }

    @Override
    public DatasetFile generate(int n, long seed) {
        Picks.checkN(n);
        Random r = new Random(seed);
        List<RawPromptPair> prompts = new ArrayList<>(n);
        Filled first = null;
        for (int i = 0; i < n; i++) {
            String t = template.equals("mixed")
                ? templateText((r.nextBoolean() ? "abba:" : "baba:") + r.nextInt(BABA_TEMPLATES.size()))
                : templateText(template);
            String place = Picks.one(r, PLACES);
            String object = Picks.one(r, OBJECTS);
            List<String> names = Picks.distinct(r, NAMES, 2, List.of());
            List<String> corrupt = Picks.distinct(r, NAMES, 3, names);
            Filled clean = fill(t, names.get(0), names.get(1), names.get(1), place, object);
            Filled bad = fill(t, corrupt.get(0), corrupt.get(1), corrupt.get(2), place, object);
            if (clean.layout.nTokens() != bad.layout.nTokens()) {
                throw new IllegalStateException("IOI corrupt prompt has another length: " + clean.layout.text() + " / "
                    + bad.layout.text());
            }
            if (first == null) first = clean;
            prompts.add(RawPromptPair.ofText(clean.layout.text(), bad.layout.text(), List.of(" " + names.get(0)),
                List.of(" " + names.get(1))));
        }
        if (template.equals("mixed")) return DatasetFile.of(prompts);
        return new DatasetFile(prompts, first.labels(tok), first.wordIdxs());
    }

    /** A template with its slots filled: the layout and which part holds which role. */
    private record Filled(TokenLayout layout, List<String> roles) {
        Map<String, Integer> wordIdxs() {
            Map<String, Integer> w = new LinkedHashMap<>();
            int io = layout.start(roles.indexOf("IO"));
            int s1 = layout.start(roles.indexOf("S1"));
            int s2 = layout.start(roles.indexOf("S2"));
            w.put("IO", io);
            w.put("IO-1", io - 1);
            w.put("IO+1", io + 1);
            w.put("S1", s1);
            w.put("S1-1", s1 - 1);
            w.put("S1+1", s1 + 1);
            w.put("S2", s2);
            w.put("end", layout.nTokens() - 1);
            w.put("starts", 0);
            return w;
        }

        /** One label per token: the role of slot tokens, the stripped token text elsewhere. */
        List<String> labels(Tokenizer tok) {
            long[] ids = layout.ids();
            List<String> out = new ArrayList<>(ids.length);
            for (int p = 0; p < roles.size(); p++) {
                for (int k = 0; k < layout.length(p); k++) {
                    String role = roles.get(p);
                    out.add(role != null ? role : tok.decode(new long[] {ids[layout.start(p) + k]}).strip());
                }
            }
            return out;
        }
    }

    /**
     * Fills a template: [A] = {@code io}, the first [B] = {@code s1}, a later [B] = {@code s2} (the ABC corrupt
     * prompt uses a third name there). Each slot becomes its own part " word".
     */
    private Filled fill(String t, String io, String s1, String s2, String place, String object) {
        List<String> parts = new ArrayList<>();
        List<String> roles = new ArrayList<>();
        Matcher m = SLOT.matcher(t);
        int at = 0;
        boolean seenB = false;
        while (m.find()) {
            if (m.start() > at) {
                parts.add(t.substring(at, m.start()));
                roles.add(null);
            }
            String slot = m.group(1);
            String word;
            String role;
            switch (slot) {
                case "A" -> { word = io; role = "IO"; }
                case "B" -> { word = seenB ? s2 : s1; role = seenB ? "S2" : "S1"; seenB = true; }
                case "PLACE" -> { word = place; role = "PLACE"; }
                default -> { word = object; role = "OBJECT"; }
            }
            parts.add((m.group().startsWith(" ") ? " " : "") + word);
            roles.add(role);
            at = m.end();
        }
        if (at < t.length()) {
            parts.add(t.substring(at));
            roles.add(null);
        }
        return new Filled(new TokenLayout(tok, parts), roles);
    }
}
