package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.RawPromptPair;
import org.autocircuit.tasks.Tokenizer;

/**
 * Greater-than prompts (Hanna, Liu & Variengien 2023, "How does GPT-2 compute greater-than?", arXiv:2305.00586):
 * "The war lasted from the year 1732 to the year 17" → any of "33" … "99" (answers), not "00" … "32" (wrong
 * answers). The corrupt prompt is the paper's "01-year" version: the start year becomes XX01, so every two-digit
 * continuation is plausible.
 *
 * <p>Centuries XX are 11 … 17 and years YY 02 … 98, as in the paper, keeping only years that GPT-2 splits into the
 * tokens " XX" and "YY" (and whose corrupt year " XX01" splits the same way), so all prompts have 12 tokens. Nouns
 * are the paper's event nouns that are one token after a space.
 */
public final class GreaterThanGenerator implements DatasetGenerator {

    /** Event nouns from the paper's list, each one GPT-2 token after a space. */
    static final List<String> NOUNS = List.of("abduction", "accord", "affair", "agreement", "appraisal", "assaults",
        "assessment", "attack", "attempts", "campaign", "captivity", "case", "challenge", "chaos", "clash",
        "collaboration", "coma", "competition", "confrontation", "consequence", "conspiracy", "construction",
        "consultation", "contact", "contract", "convention", "cooperation", "custody", "deal", "decline", "decrease",
        "demonstrations", "development", "disagreement", "disorder", "dispute", "domination", "dynasty", "effect",
        "effort", "employment", "endeavor", "engagement", "epidemic", "evaluation", "exchange", "existence",
        "expansion", "expedition", "experiments", "fall", "fame", "flights", "friendship", "growth", "hardship",
        "hostility", "illness", "impact", "imprisonment", "improvement", "incarceration", "increase", "insurgency",
        "invasion", "investigation", "journey", "kingdom", "marriage", "modernization", "negotiations", "notoriety",
        "obstruction", "operation", "order", "outbreak", "outcome", "overhaul", "patrols", "pilgrimage", "plague",
        "plan", "practice", "process", "program", "progress", "project", "pursuit", "quest", "raids", "reforms",
        "reign", "relationship", "retaliation", "riot", "rise", "rivalry", "romance", "rule", "sanctions", "shift",
        "siege", "slump", "stature", "stint", "strikes", "study", "test", "testing", "tests", "therapy", "tour",
        "tradition", "treaty", "trial", "trip", "unemployment", "voyage", "war", "warfare", "work");

    static final int FIRST_CENTURY = 11;
    static final int LAST_CENTURY = 17;
    static final int FIRST_YEAR = 2;
    static final int LAST_YEAR = 98;

    private final Tokenizer tok = new Gpt2Tokenizer();

    @Override public String key() { return "greater-than"; }

    @Override
    public String description() {
        return "Greater-than (Hanna et al. 2023): 'The war lasted from the year 1732 to the year 17' -> '33'..'99'; "
            + "corrupt = start year XX01";
    }

    @Override
    public DatasetFile generate(int n, long seed) {
        Picks.checkN(n);
        Map<Integer, List<Integer>> years = usableYears();
        List<Integer> centuries = new ArrayList<>(years.keySet());
        Random r = new Random(seed);
        List<RawPromptPair> prompts = new ArrayList<>(n);
        TokenLayout first = null;
        for (int i = 0; i < n; i++) {
            String noun = Picks.one(r, NOUNS);
            int century = Picks.one(r, centuries);
            int year = Picks.one(r, years.get(century));
            TokenLayout clean = layout(noun, century, year);
            TokenLayout corrupt = layout(noun, century, 1);
            if (clean.nTokens() != corrupt.nTokens()) {
                throw new IllegalStateException("greater-than corrupt prompt has another length: " + clean.text());
            }
            if (first == null) first = clean;
            List<String> answers = new ArrayList<>();
            List<String> wrong = new ArrayList<>();
            for (int yy = 0; yy < 100; yy++) (yy > year ? answers : wrong).add(String.format("%02d", yy));
            prompts.add(RawPromptPair.ofText(clean.text(), corrupt.text(), answers, wrong));
        }
        Map<String, Integer> words = new LinkedHashMap<>();
        words.put("NOUN", first.start(1));
        words.put("XX1", first.start(3));
        words.put("YY", first.start(4));
        words.put("XX2", first.start(6));
        words.put("end", first.nTokens() - 1);
        List<String> labels = new ArrayList<>();
        long[] ids = first.ids();
        for (int t = 0; t < ids.length; t++) labels.add(tok.decode(new long[] {ids[t]}).strip());
        labels.set(first.start(1), "NOUN");
        labels.set(first.start(3), "XX1");
        labels.set(first.start(4), "YY");
        labels.set(first.start(6), "XX2");
        return new DatasetFile(prompts, labels, words);
    }

    private TokenLayout layout(String noun, int century, int year) {
        return new TokenLayout(tok, List.of("The", " " + noun, " lasted from the year", " " + century,
            String.format("%02d", year), " to the year", " " + century));
    }

    /** Century → the years YY in [02, 98] whose " XXYY" (and " XX01") GPT-2 splits into " XX" + "YY". */
    Map<Integer, List<Integer>> usableYears() {
        Map<Integer, List<Integer>> out = new LinkedHashMap<>();
        for (int c = FIRST_CENTURY; c <= LAST_CENTURY; c++) {
            if (!splits(c, 1)) continue;
            List<Integer> ok = new ArrayList<>();
            for (int y = FIRST_YEAR; y <= LAST_YEAR; y++) if (splits(c, y)) ok.add(y);
            if (!ok.isEmpty()) out.put(c, ok);
        }
        return out;
    }

    private boolean splits(int century, int year) {
        String yy = String.format("%02d", year);
        long[] whole = tok.encode(" " + century + yy);
        long[] c = tok.encode(" " + century);
        long[] y = tok.encode(yy);
        return whole.length == 2 && c.length == 1 && y.length == 1 && whole[0] == c[0] && whole[1] == y[0];
    }
}
