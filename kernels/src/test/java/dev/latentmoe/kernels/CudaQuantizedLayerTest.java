package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cuda.CudaBackend;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * FP8 / NVFP4 weights on the CUDA backend: uploaded as stored ({@code CudaWeightUpload}), run
 * weight-only against the float64 reference on the dequantized weights ({@link ReferenceMoe},
 * {@link WeightMatrix#dequantized()}), and W8A8 through {@link CudaBackend#w8a8()}. Needs
 * {@code -Dlatentmoe.test.backend=cuda} and a GPU (skipped otherwise; the native
 * {@code lmoe_cuda_test quick} checks the kernels themselves, W8A8 against a reference that
 * quantizes the activations the same way).
 */
@ExtendWith(NoLeaks.class)
class CudaQuantizedLayerTest {
    /** Every dimension a multiple of 32 (the library's rule for quantized layers), odd N. */
    static final MoeConfig LATENT = Cases.cfg(256, 96, 37, 6, 160, 224, 2.5f, Activation.RELU2);
    static final MoeConfig STANDARD_SILU = Cases.cfg(192, 0, 24, 4, 128, 96, 1.0f, Activation.SILU);

    static Stream<Arguments> cases() {
        WeightFormat f = WeightFormat.FP8_E4M3, q = WeightFormat.NVFP4, b = WeightFormat.BF16;
        return Stream.of(
                Arguments.of("fp8 experts, bf16 dense", LATENT, f, b, 1),
                Arguments.of("fp8 experts, bf16 dense", LATENT, f, b, 300),
                Arguments.of("nvfp4 everywhere", LATENT, q, q, 5),
                Arguments.of("nvfp4 everywhere", LATENT, q, q, 64),
                Arguments.of("nvfp4 experts, fp8 dense, silu", STANDARD_SILU, q, f, 3),
                Arguments.of("nvfp4 experts, fp8 dense, silu", STANDARD_SILU, q, f, 130));
    }

    @ParameterizedTest(name = "{0} T={4}")
    @MethodSource("cases")
    void weightOnlyMatchesFloat64Reference(String name, MoeConfig cfg, WeightFormat experts, WeightFormat dense, int tokens) {
        Backend backend = TestBackend.requireCuda();
        long seed = Cases.seed(name + " T=" + tokens);
        try (HostArena host = HostArena.shared("quantized-weights")) {
            MoeWeights w = weights(cfg, experts, dense, 0f, seed, host);
            try (MoeLayer layer = MoeLayer.of(w, backend)) {
                Result r = run(layer, tokens, seed, host);
                LayerForwardTest.assertMatches(layer, r.x, r.y, r.routing, TestBackend.tolerance(), TestBackend.routeTolerance());
            }
        }
    }

    /**
     * W8A8: the FP8 matrices carry input scales; on {@code CudaBackend.w8a8()} their activations are
     * quantized (an error of a few percent against the weight-only reference, and a result that is
     * not the weight-only one), on the default backend the input scales are not used.
     */
    @Test
    void w8a8UsesTheInputScales() {
        TestBackend.requireCuda();
        long seed = Cases.seed("w8a8");
        int tokens = 40;
        try (HostArena host = HostArena.shared("quantized-weights")) {
            MoeWeights w = weights(LATENT, WeightFormat.FP8_E4M3, WeightFormat.FP8_E4M3, 1f / 256, seed, host);
            float[] weightOnly, w8a8;
            Result r;
            try (MoeLayer layer = MoeLayer.of(w, Backends.get("cuda"))) {
                r = run(layer, tokens, seed, host);
                weightOnly = r.y.toFloatArray();
                LayerForwardTest.assertMatches(layer, r.x, r.y, r.routing, TestBackend.tolerance(), TestBackend.routeTolerance());
            }
            assertEquals(CudaBackend.NAME_W8A8, CudaBackend.w8a8().name());
            try (MoeLayer layer = MoeLayer.of(w, CudaBackend.w8a8())) {
                Result q = run(layer, tokens, seed, host);
                w8a8 = q.y.toFloatArray();
                // activation quantization to e4m3 (3 mantissa bits): a few percent, not more
                LayerForwardTest.assertMatches(layer, q.x, q.y, q.routing, 6e-2, TestBackend.routeTolerance());
            }
            double num = 0, den = 0;
            for (int i = 0; i < w8a8.length; i++) {
                num += (w8a8[i] - weightOnly[i]) * (double) (w8a8[i] - weightOnly[i]);
                den += weightOnly[i] * (double) weightOnly[i];
            }
            double diff = Math.sqrt(num / den);
            System.out.printf("W8A8 vs weight-only: relative difference %.3e%n", diff);
            assertTrue(diff > 1e-3, "W8A8 output equals the weight-only one: input scales not used (" + diff + ")");
        }
    }

    /** One format per expert matrix kind: a mix is refused before any upload. */
    @Test
    void mixedExpertFormatsAreRefused() {
        Backend backend = TestBackend.requireCuda();
        long seed = Cases.seed("mixed experts");
        try (HostArena host = HostArena.shared("quantized-weights")) {
            MoeWeights w = weights(LATENT, WeightFormat.FP8_E4M3, WeightFormat.BF16, 0f, seed, host);
            WeightMatrix[] up = new WeightMatrix[LATENT.numExperts()], down = new WeightMatrix[LATENT.numExperts()];
            for (int e = 0; e < up.length; e++) {
                up[e] = e == 3 ? matrix(WeightFormat.NVFP4, LATENT.intermediateSize(), LATENT.expertWidth(), 0f, new SplittableRandom(seed), host)
                        : w.expertUp(e);
                down[e] = w.expertDown(e);
            }
            MoeWeights mixed = new MoeWeights(LATENT, w.gate(), w.gateBias(), w.latentDown(), w.latentUp(), up, null, down,
                    w.sharedUp(), null, w.sharedDown());
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> MoeLayer.of(mixed, backend));
            assertTrue(e.getMessage().contains("expert_up"), e.getMessage());
        }
    }

    record Result(Tensor x, Tensor y, Routing routing) {}

    static Result run(MoeLayer layer, int tokens, long seed, HostArena host) {
        MoeConfig cfg = layer.config();
        try (TestBackend.Dev dev = TestBackend.dev(layer.backend())) {
            Tensor x = Cases.input(host, tokens, cfg.hiddenSize(), seed ^ 0x5DEECE66DL).convertTo(DType.BF16, host);
            Tensor y = host.allocateTensor(DType.BF16, tokens, cfg.hiddenSize()).fill(Float.NaN);
            Routing routing = Routing.allocate(host, tokens, cfg.topK());
            Tensor dx = dev.in(x);
            Tensor dy = dev.in(y);
            Routing dr = dev.in(routing);
            layer.forward(dx, dy, dr);
            dev.back(dy, y);
            dev.back(dr, routing);
            return new Result(x, y, routing);
        }
    }

    /** Random weights: the experts in {@code experts}, the latent and shared matrices in {@code dense}, the gate BF16. */
    static MoeWeights weights(MoeConfig c, WeightFormat experts, WeightFormat dense, float inputScale, long seed, MemoryArena a) {
        SplittableRandom r = new SplittableRandom(seed);
        int d = c.hiddenSize(), l = c.latentSize(), n = c.numExperts(), m = c.intermediateSize(), w = c.expertWidth();
        int ms = c.sharedIntermediateSize();
        Tensor gate = a.allocateTensor(DType.BF16, n, d);
        for (long i = 0; i < gate.numel(); i++) gate.setFloat(i, (float) ((r.nextDouble() * 2 - 1) / Math.sqrt(d)));
        Tensor bias = a.allocateTensor(DType.F32, n);
        for (int i = 0; i < n; i++) bias.setFloat(i, (float) (0.1 * (r.nextDouble() - 0.5)));
        WeightMatrix[] up = new WeightMatrix[n], down = new WeightMatrix[n];
        for (int e = 0; e < n; e++) {
            up[e] = matrix(experts, m, w, inputScale, r, a);
            down[e] = matrix(experts, w, m, inputScale, r, a);
        }
        return new MoeWeights(c, WeightMatrix.of(gate), bias, l > 0 ? matrix(dense, l, d, inputScale, r, a) : null,
                l > 0 ? matrix(dense, d, l, inputScale, r, a) : null, up, null, down,
                ms > 0 ? matrix(dense, ms, d, inputScale, r, a) : null, null, ms > 0 ? matrix(dense, d, ms, inputScale, r, a) : null);
    }

    /**
     * One [rows, cols] matrix, values about uniform in ±1/sqrt(cols). FP8: every non-NaN e4m3 code
     * (subnormals included) times a scale; NVFP4: random codes, block scales over e4m3's normal and
     * subnormal range; BF16 uniform.
     */
    static WeightMatrix matrix(WeightFormat f, int rows, int cols, float inputScale, SplittableRandom r, MemoryArena a) {
        double amp = 1 / Math.sqrt(cols);
        switch (f) {
            case FP8_E4M3 -> {
                Tensor data = a.allocateTensor(DType.F8_E4M3, rows, cols);
                for (long i = 0; i < data.numel(); i++) {
                    int code = r.nextInt(254);
                    if (code >= 0x7f) code++; // skip the NaN code 0x7f (0xff is 254, never drawn)
                    data.segment().set(ValueLayout.JAVA_BYTE, i, (byte) code);
                }
                // codes up to 448 in magnitude, mostly around 2^0..2^8: scale so that weights stay ~amp
                return WeightMatrix.fp8(data, (float) (amp / 64 * (0.7 + 0.6 * r.nextDouble())), inputScale);
            }
            case NVFP4 -> {
                Tensor data = a.allocateTensor(DType.U8, rows, cols / 2);
                for (long i = 0; i < data.numel(); i++) data.segment().set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
                Tensor bs = a.allocateTensor(DType.F8_E4M3, rows, cols / 16);
                for (long i = 0; i < bs.numel(); i++) {  // 2^-9 .. 2^1: subnormal and normal scales
                    bs.segment().set(ValueLayout.JAVA_BYTE, i, (byte) (r.nextInt(40) == 0 ? 1 + r.nextInt(7) : 0x30 + r.nextInt(24)));
                }
                return WeightMatrix.nvfp4(data, bs, (float) (amp / 6 * (0.7 + 0.6 * r.nextDouble())), 0f);
            }
            default -> {
                Tensor t = a.allocateTensor(DType.BF16, rows, cols);
                for (long i = 0; i < t.numel(); i++) t.setFloat(i, (float) (amp * (r.nextDouble() * 2 - 1)));
                return WeightMatrix.of(t);
            }
        }
    }
}
