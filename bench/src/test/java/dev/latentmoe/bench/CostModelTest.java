package dev.latentmoe.bench;

import dev.latentmoe.kernels.MoeConfig;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Table 1 of arXiv 2601.18089 for the Super preset, against values computed by hand. */
class CostModelTest {
    // d 4096, l 1024, alpha 4, N 512, K 22, m 2688, shared 5376, relu2 (2 matrices per expert)
    private static final MoeConfig BASE = CostModel.standardBase(MoeConfig.NEMOTRON3_SUPER);

    @Test
    void superBf16Ep8() {
        List<CostModel.Row> rows = CostModel.table(BASE, 1024, 2, 8);
        CostModel.Row std = rows.get(0), eff = rows.get(1), acc = rows.get(2);
        // standard: router 512*4096 = 2,097,152; routed 22*2*4096*2688 = 484,442,112; shared 2*4096*5376 = 44,040,192
        assertEquals(530_579_456L, std.activeWeights());
        assertEquals(1_061_158_912L, std.weightBytes());
        assertEquals(1_061_158_912L, std.flops());
        assertEquals(315_392.0, std.allToAllBytes(), 1e-9);          // 2*22*4096*2 * 7/8
        // eff: router 2048*4096 = 8,388,608; latent 2*4096*1024 = 8,388,608; routed 22*2*1024*2688 = 121,110,528
        assertEquals(2048, eff.numExperts());
        assertEquals(22, eff.topK());
        assertEquals(181_927_936L, eff.activeWeights());
        assertEquals(363_855_872L, eff.weightBytes());
        assertEquals(78_848.0, eff.allToAllBytes(), 1e-9);           // 2*22*1024*2 * 7/8
        // acc: K' = 88, routed 88*2*1024*2688 = 484,442,112
        assertEquals(88, acc.topK());
        assertEquals(545_259_520L, acc.activeWeights());
        assertEquals(1_090_519_040L, acc.weightBytes());
        assertEquals(2 * 545_259_520L, acc.flops());
        assertEquals(std.allToAllBytes(), acc.allToAllBytes(), 1e-9); // alpha*K*l = K*d
        // iso-parameter: the stored routed weights are equal (N*2*d*m = alpha*N*2*l*m)
        assertEquals(std.storedRoutedWeights(), eff.storedRoutedWeights());
        assertEquals(std.storedRoutedWeights(), acc.storedRoutedWeights());
        assertEquals(512L * 2 * 4096 * 2688, std.storedRoutedWeights());
    }

    @Test
    void noAllToAllWithoutExpertParallelismAndF32Doubles() {
        List<CostModel.Row> bf16 = CostModel.table(BASE, 1024, 2, 1);
        List<CostModel.Row> f32 = CostModel.table(BASE, 1024, 4, 1);
        for (int i = 0; i < 3; i++) {
            assertEquals(0.0, bf16.get(i).allToAllBytes());
            assertEquals(2 * bf16.get(i).weightBytes(), f32.get(i).weightBytes());
            assertEquals(bf16.get(i).flops(), f32.get(i).flops());
        }
        assertThrows(IllegalArgumentException.class, () -> CostModel.table(BASE, 1000, 2, 1));
    }

    @Test
    void presetAsBuilt() {
        MoeConfig s = MoeConfig.NEMOTRON3_SUPER;
        CostModel.Row r = CostModel.row("super", s, 512, 22, 1024, 1024, 2, 4);
        // router 2,097,152 + latent 8,388,608 + routed 22*2*1024*2688 = 121,110,528 + shared 44,040,192
        assertEquals(175_636_480L, r.activeWeights());
        assertEquals(2.0 * 22 * 1024 * 2 * 3 / 4, r.allToAllBytes(), 1e-9);
    }
}
