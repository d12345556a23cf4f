package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class Gpt2TokenizerTest {
    private final Tokenizer tok = new Gpt2Tokenizer();

    @Test
    void encodesLikeGpt2() {
        // ids from the golden fixture (AutoCircuit + Hugging Face GPT-2 tokenizer), clean prompt 0 of ioi-32.json
        assertArrayEquals(new long[] {50256, 2215, 16556, 290, 3977, 1816, 284, 262, 11376, 11, 3977, 2921, 257, 3644, 284},
            tok.encode("<|endoftext|>When Marco and William went to the garden, William gave a computer to"));
        assertArrayEquals(new long[] {16556}, tok.encode(" Marco"));
        assertArrayEquals(new long[] {40, 588}, tok.encode("I like"));
    }

    @Test
    void bosStringIsOneSpecialTokenAnywhere() {
        assertArrayEquals(new long[] {50256}, tok.encode("<|endoftext|>"));
        assertArrayEquals(new long[] {40, 50256, 50256, 588}, tok.encode("I<|endoftext|><|endoftext|> like"));
        assertArrayEquals(new long[0], tok.encode(""));
        assertEquals(50256, tok.bosId());
        assertEquals(50256, tok.padId());
        assertEquals("<|endoftext|>", tok.bosString());
    }

    @Test
    void decodesRoundTrip() {
        String text = "<|endoftext|>When Mary and John went to the café, John gave a drink to ☃";
        assertEquals(text, tok.decode(tok.encode(text)));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {50257}));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {-1}));
    }
}
