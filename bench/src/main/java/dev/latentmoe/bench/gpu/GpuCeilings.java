package dev.latentmoe.bench.gpu;

import dev.latentmoe.bench.nvidia.cublasLtMatmulHeuristicResult_t;
import dev.latentmoe.bench.nvidia.cublasLt_h;
import dev.latentmoe.bench.report.Stats;
import dev.latentmoe.bindings.latentmoe_cuda_h;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.DeviceArena;
import dev.latentmoe.memory.Tensor;
import dev.latentmoe.memory.cuda.Cuda;
import dev.latentmoe.memory.cuda.CudaStream;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What this GPU allows, measured in the same run as the layer: device-to-device copy bandwidth
 * (the memory roofline), the dense bf16 GEMM rate of cuBLASLt at n³ and at the routed experts'
 * prefill shapes (the compute roofline), and the host-time floors a graph replay is compared with
 * (a bare downcall, a raw graph launch). The one bench class that calls the C ABI and cuBLASLt
 * directly: measuring them is its purpose.
 *
 * @param gemmTflops NaN when cuBLASLt was unavailable, {@code gemmNote} then saying why;
 *     otherwise {@code gemmNote} describes the GEMM
 */
public record GpuCeilings(String device, double d2dGbps, long d2dBytes, double gemmTflops, String gemmNote,
                          List<ExpertGemm> expertShapes) {

    static final String NOT_MEASURED = "not measured (--no-ceilings)";

    boolean gemmAvailable() { return !Double.isNaN(gemmTflops); }

    /** The ceilings skipped ({@code --no-ceilings}). */
    static GpuCeilings notMeasured(String device) {
        return new GpuCeilings(device, Double.NaN, 0, Double.NaN, NOT_MEASURED, List.of());
    }

    /**
     * Copy bandwidth of {@code copyBytes} and the cuBLASLt rate at {@code gemmSize}³ (unavailable
     * with the reason when it cannot run), each printed, then {@code expertShapes} (may be empty).
     */
    static GpuCeilings measure(CudaStream s, String device, long copyBytes, int gemmSize, ExpertShapes expertShapes) {
        double d2d = copyBandwidth(s, copyBytes);
        double gemm = Double.NaN;
        String note;
        try {
            gemm = gemmTflops(s, gemmSize);
            note = String.format(Locale.ROOT, "cuBLASLt %s bf16 GEMM %dx%dx%d, fp32 compute, TN, heuristic algo, 32 MiB workspace",
                    cublasLt_h.libraryPath(), gemmSize, gemmSize, gemmSize);
        } catch (RuntimeException | LinkageError e) {
            note = unavailable(e);
        }
        System.out.println(gemmLine(gemm, note));
        return new GpuCeilings(device, d2d, copyBytes, gemm, note, expertShapes.measure(s));
    }

    /** The expert-shape GEMMs a command wants measured, given the stream. */
    interface ExpertShapes {
        List<ExpertGemm> measure(CudaStream s);
    }

    /**
     * The dense cuBLASLt rate at the routed experts' prefill GEMM shapes for T tokens: M = T·K rows,
     * FC1 = [M x width] x [width x inter] and FC2 = [M x inter] x [inter x width] (width = ℓ, or d for a
     * standard MoE; inter = m). {@code combinedTflops} is (FLOPs FC1 + FLOPs FC2) / (time FC1 + time
     * FC2). Times are NaN when not measured, with {@code note} saying why (null when measured).
     */
    record ExpertGemm(int tokens, int topK, long rows, int width, int inter, double fc1Ms, double fc2Ms, String note) {
        static ExpertGemm of(int tokens, MoeConfig c, double fc1Ms, double fc2Ms, String note) {
            return new ExpertGemm(tokens, c.topK(), (long) tokens * c.topK(), c.expertWidth(), c.intermediateSize(),
                    fc1Ms, fc2Ms, note);
        }

        /** FLOPs of one of FC1 and FC2 (both are 2 M ℓ m). */
        double flopsEach() { return 2.0 * rows * (double) width * inter; }

        double fc1Tflops() { return flopsEach() / (fc1Ms * 1e-3) / 1e12; }

        double fc2Tflops() { return flopsEach() / (fc2Ms * 1e-3) / 1e12; }

        double combinedTflops() { return 2 * flopsEach() / ((fc1Ms + fc2Ms) * 1e-3) / 1e12; }

        boolean available() { return !Double.isNaN(fc1Ms) && !Double.isNaN(fc2Ms); }
    }

    /** Times one m x n x k GEMM in ms ({@link #gemmMillis}); throws with the reason when it cannot. */
    interface GemmTimer {
        double millis(long m, long n, long k);
    }

    /** The expert-shape ceilings of {@code cfg} for each T of {@code tokens}, each printed; never throws (the entry's note says why). */
    static List<ExpertGemm> expertShapes(MoeConfig cfg, List<Integer> tokens, GemmTimer timer) {
        List<ExpertGemm> out = new ArrayList<>();
        for (int t : tokens) {
            ExpertGemm g;
            long rows = (long) t * cfg.topK();
            try {
                double fc1 = timer.millis(rows, cfg.intermediateSize(), cfg.expertWidth());
                double fc2 = timer.millis(rows, cfg.expertWidth(), cfg.intermediateSize());
                g = ExpertGemm.of(t, cfg, fc1, fc2, null);
            } catch (RuntimeException | LinkageError e) {
                g = ExpertGemm.of(t, cfg, Double.NaN, Double.NaN, unavailable(e));
            }
            System.out.println(expertGemmLine(g));
            out.add(g);
        }
        return out;
    }

    static String unavailable(Throwable e) {
        return "unavailable: " + String.valueOf(e.getMessage()).replace('\n', ' ');
    }

    static String expertGemmLine(ExpertGemm g) {
        String head = String.format(Locale.ROOT, "expert-shape GEMM ceiling T=%d (M = T*K = %d, MxNxK): ", g.tokens(), g.rows());
        if (!g.available()) return head + "cuBLASLt GEMM " + g.note();
        return head + String.format(Locale.ROOT,
                "FC1 %dx%dx%d %.1f TFLOP/s (%.3f ms), FC2 %dx%dx%d %.1f TFLOP/s (%.3f ms), combined %.1f TFLOP/s",
                g.rows(), g.inter(), g.width(), g.fc1Tflops(), g.fc1Ms(), g.rows(), g.width(), g.inter(), g.fc2Tflops(),
                g.fc2Ms(), g.combinedTflops());
    }

    static String gemmLine(double tflops, String note) {
        return Double.isNaN(tflops) ? "compute ceiling: cuBLASLt GEMM " + note
                : String.format(Locale.ROOT, "compute ceiling: %.1f TFLOP/s (%s)", tflops, note);
    }

    /** D2D copy bandwidth (read + write) of {@code bytes}, median of 10 after 2 warm-ups, printed. */
    static double copyBandwidth(CudaStream s, long bytes) {
        try (DeviceArena a = DeviceArena.create("bench-copy", s)) {
            MemorySegment src = a.allocate(bytes), dst = a.allocate(bytes);
            Runnable copy = () -> Cuda.check(latentmoe_cuda_h.lmoe_cuda_memcpy_d2d_async(dst, src, bytes, s.handle()),
                    "lmoe_cuda_memcpy_d2d_async");
            GpuTiming.backToBack(s, 2, copy);
            double ms = Stats.median(GpuTiming.backToBack(s, 10, copy));
            double gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
            System.out.printf(Locale.ROOT, "memory ceiling: device-to-device copy of %d MiB: %.3f ms, %.1f GB/s (read + write)%n",
                    bytes >> 20, ms, gbps);
            return gbps;
        }
    }

    /** cuBLASLt bf16 GEMM rate, n x n x n, fp32 compute, D = A^T B (TN). Throws with the reason when unavailable. */
    static double gemmTflops(CudaStream s, int n) {
        double ms = gemmMillis(s, n, n, n);
        return 2.0 * n * (double) n * n / (ms * 1e-3) / 1e12;
    }

    /**
     * Median ms of one cuBLASLt bf16 GEMM of m x n x k (D [m x n] = A [m x k] · B [k x n], 2 m n k FLOPs),
     * fp32 compute, TN (A stored k x m column-major, i.e. row-major [m, k], and transposed by the op; B
     * k x n column-major; D m x n column-major), heuristic algorithm, 32 MiB workspace; operands filled
     * on the device with uniform [-1, 1), 2 warm-ups then 10 timed calls, all freed before returning.
     * Throws with the reason when cuBLASLt is unavailable.
     */
    static double gemmMillis(CudaStream s, long m, long n, long k) {
        if (!cublasLt_h.isAvailable()) {
            throw new IllegalStateException(cublasLt_h.unavailableReason().orElse("libcublasLt.so.13 not loaded"));
        }
        if (m < 1 || n < 1 || k < 1) throw new IllegalArgumentException("GEMM dimensions must be >= 1, got " + m + "x" + n + "x" + k);
        long ws = 32L << 20;
        try (DeviceArena dev = DeviceArena.create("bench-gemm", s); Arena h = Arena.ofConfined()) {
            Tensor a = dev.allocateTensor(DType.BF16, m, k), b = dev.allocateTensor(DType.BF16, k, n);
            MemorySegment d = dev.allocate(m * n * 2);
            MemorySegment work = dev.allocate(ws);
            Cuda.fillUniformAsync(a, 1, -1f, 1f, s);
            Cuda.fillUniformAsync(b, 2, -1f, 1f, s);
            s.synchronize();
            MemorySegment p = h.allocate(ValueLayout.ADDRESS);
            cublasLt_h.check(cublasLt_h.cublasLtCreate(p), "cublasLtCreate");
            MemorySegment handle = p.get(ValueLayout.ADDRESS, 0);
            List<Runnable> cleanup = new ArrayList<>();
            cleanup.add(() -> cublasLt_h.cublasLtDestroy(handle));
            try {
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescCreate(p, cublasLt_h.CUBLAS_COMPUTE_32F, cublasLt_h.CUDA_R_32F),
                        "cublasLtMatmulDescCreate");
                MemorySegment op = p.get(ValueLayout.ADDRESS, 0);
                cleanup.add(() -> cublasLt_h.cublasLtMatmulDescDestroy(op));
                MemorySegment trans = h.allocate(ValueLayout.JAVA_INT);
                trans.set(ValueLayout.JAVA_INT, 0, cublasLt_h.CUBLAS_OP_T);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescSetAttribute(op, cublasLt_h.CUBLASLT_MATMUL_DESC_TRANSA, trans, 4),
                        "cublasLtMatmulDescSetAttribute(TRANSA)");
                trans.set(ValueLayout.JAVA_INT, 0, cublasLt_h.CUBLAS_OP_N);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulDescSetAttribute(op, cublasLt_h.CUBLASLT_MATMUL_DESC_TRANSB, trans, 4),
                        "cublasLtMatmulDescSetAttribute(TRANSB)");
                // Column-major: A stored k x m (transposed by the op), B k x n, C = D m x n.
                long[][] dims = {{k, m}, {k, n}, {m, n}};
                MemorySegment[] lay = new MemorySegment[3];
                for (int i = 0; i < 3; i++) {
                    cublasLt_h.check(cublasLt_h.cublasLtMatrixLayoutCreate(p, cublasLt_h.CUDA_R_16BF, dims[i][0], dims[i][1],
                            dims[i][0]), "cublasLtMatrixLayoutCreate");
                    MemorySegment l = p.get(ValueLayout.ADDRESS, 0);
                    lay[i] = l;
                    cleanup.add(() -> cublasLt_h.cublasLtMatrixLayoutDestroy(l));
                }
                cublasLt_h.check(cublasLt_h.cublasLtMatmulPreferenceCreate(p), "cublasLtMatmulPreferenceCreate");
                MemorySegment pref = p.get(ValueLayout.ADDRESS, 0);
                cleanup.add(() -> cublasLt_h.cublasLtMatmulPreferenceDestroy(pref));
                MemorySegment wsBytes = h.allocate(ValueLayout.JAVA_LONG);
                wsBytes.set(ValueLayout.JAVA_LONG, 0, ws);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulPreferenceSetAttribute(pref,
                        cublasLt_h.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, wsBytes, 8), "cublasLtMatmulPreferenceSetAttribute");
                MemorySegment heur = cublasLtMatmulHeuristicResult_t.allocate(h);
                MemorySegment count = h.allocate(ValueLayout.JAVA_INT);
                cublasLt_h.check(cublasLt_h.cublasLtMatmulAlgoGetHeuristic(handle, op, lay[0], lay[1], lay[2], lay[2], pref, 1,
                        heur, count), "cublasLtMatmulAlgoGetHeuristic");
                if (count.get(ValueLayout.JAVA_INT, 0) < 1) throw new IllegalStateException("cuBLASLt heuristic returned no algorithm");
                MemorySegment algo = cublasLtMatmulHeuristicResult_t.algo(heur);
                MemorySegment alpha = h.allocate(ValueLayout.JAVA_FLOAT), beta = h.allocate(ValueLayout.JAVA_FLOAT);
                alpha.set(ValueLayout.JAVA_FLOAT, 0, 1f);
                beta.set(ValueLayout.JAVA_FLOAT, 0, 0f);
                MemorySegment aSeg = a.segment(), bSeg = b.segment();
                Runnable gemm = () -> cublasLt_h.check(cublasLt_h.cublasLtMatmul(handle, op, alpha, aSeg, lay[0], bSeg, lay[1], beta,
                        d, lay[2], d, lay[2], algo, work, ws, s.handle()), "cublasLtMatmul");
                GpuTiming.backToBack(s, 2, gemm);
                return Stats.median(GpuTiming.backToBack(s, 10, gemm));
            } finally {
                s.synchronize();
                for (int i = cleanup.size() - 1; i >= 0; i--) cleanup.get(i).run();
            }
        }
    }

    // ---- host-time floors of the graph replay bench

    /** The cheapest native call there is ({@code lmoe_cuda_abi_version}): the floor of any downcall. */
    static int bareDowncall() { return latentmoe_cuda_h.lmoe_cuda_abi_version(); }

    /** A graph launch by a raw downcall, no Java around it. */
    static void rawGraphLaunch(MemorySegment exec, MemorySegment stream) {
        int st = latentmoe_cuda_h.lmoe_cuda_graph_launch(exec, stream);
        if (st != 0) Cuda.check(st, "lmoe_cuda_graph_launch");
    }
}
