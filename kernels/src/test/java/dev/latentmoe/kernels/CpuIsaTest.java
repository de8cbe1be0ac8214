package dev.latentmoe.kernels;

import dev.latentmoe.bindings.latentmoe_h;
import dev.latentmoe.bindings.runtime.LatentMoeNativeException;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java side of the ISA report: the whole layer on every CPU instruction-set path this CPU has
 * (the other Java tests run on the default, the best one), against the float64 reference, and one
 * line naming the paths tested and those this CPU lacks (loudly), which {@code ./latentmoe test}
 * repeats at its end. The paths come from the bindings' {@code LMOE_ISA_*} constants, so a new one
 * (AVX-512-BF16, AMX) is run and reported without a change here.
 */
@ExtendWith(NoLeaks.class)
class CpuIsaTest {

    @Test
    void everyIsaPathThisCpuHasMatchesTheReference() {
        TestBackend.skipUnless(Backends.cpu());
        String before = Cpu.isa();
        List<String> tested = new ArrayList<>(), lacking = new ArrayList<>();
        long seed = Cases.seed("every ISA path");
        MoeConfig relu2 = Cases.SUPER_SMALL.withTopK(8);
        try (MoeLayer a = MoeLayer.random(relu2, DType.BF16, seed, Backends.cpu());
             MoeLayer b = MoeLayer.random(Cases.ODD_SWIGLU, DType.F32, seed + 1, Backends.cpu());
             HostArena arena = HostArena.shared("isa-paths")) {
            for (String isa : Cpu.isaNames()) {
                try {
                    Cpu.setIsa(isa);
                } catch (LatentMoeNativeException e) {
                    assertEquals(latentmoe_h.LMOE_ERR_UNSUPPORTED, e.status(), e.getMessage());
                    lacking.add(isa);
                    continue;
                }
                assertEquals(isa, Cpu.isa());
                for (MoeLayer layer : List.of(a, b)) {
                    Tensor x = Cases.input(arena, 19, layer.config().hiddenSize(), seed + 2);
                    Tensor y = arena.allocateTensor(DType.F32, 19, layer.config().hiddenSize()).fill(Float.NaN);
                    Routing r = Routing.allocate(arena, 19, layer.config().topK());
                    layer.forward(x, y, r);
                    LayerForwardTest.assertMatches(layer, x, y, r, TestBackend.tolerance(), TestBackend.routeTolerance());
                }
                tested.add(isa);
            }
        } finally {
            Cpu.setIsa(before);
        }
        if (!lacking.isEmpty()) {
            String bar = "!".repeat(100);
            System.out.println(bar + "\n!!! CPU ISA PATHS NOT TESTED BY THE JAVA TESTS ON THIS MACHINE: " + String.join(", ", lacking)
                    + "\n!!! (this CPU lacks them; run the tests on one that has them)\n" + bar);
        }
        System.out.println("CPU ISA paths (Java tests): tested " + String.join(", ", tested) + "; NOT TESTED: "
                + (lacking.isEmpty() ? "none" : String.join(", ", lacking)) + "; the other Java tests ran on "
                + Cpu.bestIsa() + " (the default: the best this CPU has)");
        assertTrue(tested.contains("scalar"), "the scalar path runs everywhere");
        assertTrue(tested.contains(Cpu.bestIsa()), "the best path " + Cpu.bestIsa() + " was not tested");
    }

    @Test
    void isaNamesFollowTheBindingsConstants() {
        assertEquals(Map.of(0, "scalar", 1, "avx2", 2, "avx512"), Map.copyOf(Cpu.isaNames(FakeHeader.class)));
        assertTrue(Cpu.isaNames().containsAll(List.of("scalar", "avx2", "avx512")), Cpu.isaNames().toString());
        assertEquals(Cpu.isaNames().size(), Cpu.isaNames(latentmoe_h.class).size());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Cpu.setIsa("avx9000"));
        assertTrue(e.getMessage().contains("known: " + Cpu.isaNames()), e.getMessage());
    }

    /** The constants a header class declares; other fields are ignored. */
    public static final class FakeHeader {
        public static final int LMOE_ISA_SCALAR = 0;
        public static final int LMOE_ISA_AVX2 = 1;
        public static final int LMOE_ISA_AVX512 = 2;
        public static final int LMOE_PROBE_COPY = 0;
        public static final long LMOE_ISA_NOT_AN_INT = 5;

        private FakeHeader() {}
    }
}
