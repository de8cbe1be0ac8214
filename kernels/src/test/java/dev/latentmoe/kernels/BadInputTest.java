package dev.latentmoe.kernels;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.function.Executable;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input raises a clear Java exception before any native call; the JVM never crashes. */
@ExtendWith(NoLeaks.class)
class BadInputTest {
    static final MoeConfig CFG = Cases.cfg(40, 12, 9, 3, 20, 16, 2.0f, Activation.RELU2);
    MoeLayer layer;
    HostArena arena;

    @BeforeEach
    void setUp() {
        layer = MoeLayer.random(CFG, DType.BF16, Cases.seed("bad input"), Backends.cpu());
        arena = HostArena.shared("bad-input");
    }

    @AfterEach
    void tearDown() {
        layer.close();
        arena.close();
    }

    private static <T extends Throwable> void raises(Class<T> type, String fragment, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(fragment),
                "message '" + e.getMessage() + "' should mention '" + fragment + "'");
    }

    @Test
    void wrongShapes() {
        Tensor x = Cases.input(arena, 4, CFG.hiddenSize() + 1, 1);
        raises(IllegalArgumentException.class, "x must have shape", () -> layer.forward(x));
        Tensor x3 = arena.allocateTensor(DType.F32, 2, 2, CFG.hiddenSize()).fill(1);
        raises(IllegalArgumentException.class, "input x must be", () -> layer.forward(x3));
        Tensor good = Cases.input(arena, 4, CFG.hiddenSize(), 2);
        Tensor badOut = arena.allocateTensor(DType.F32, 3, CFG.hiddenSize());
        raises(IllegalArgumentException.class, "out must have shape", () -> layer.forward(good, badOut));
        Routing badRouting = Routing.allocate(arena, 4, CFG.topK() + 1);
        Tensor out = arena.allocateTensor(DType.F32, 4, CFG.hiddenSize());
        raises(IllegalArgumentException.class, "topkIds must have shape", () -> layer.forward(good, out, badRouting));
    }

    @Test
    void wrongDtypes() {
        Tensor xb = arena.allocateTensor(DType.BF16, 2, CFG.hiddenSize()).fill(0.5f);
        raises(IllegalArgumentException.class, "x must be F32", () -> layer.forward(xb));
        Tensor x = Cases.input(arena, 2, CFG.hiddenSize(), 3);
        Tensor outI = arena.allocateTensor(DType.I32, 2, CFG.hiddenSize());
        raises(IllegalArgumentException.class, "out must be F32", () -> layer.forward(x, outI));
    }

    @Test
    void emptyBatch() {
        Tensor x = arena.allocateTensor(DType.F32, 0, CFG.hiddenSize());
        raises(IllegalArgumentException.class, "empty batch", () -> layer.forward(x));
        raises(IllegalArgumentException.class, "empty batch", () -> layer.route(x));
    }

    @Test
    void nonFiniteInputIsRejected() {
        Tensor x = Cases.input(arena, 3, CFG.hiddenSize(), 4);
        x.setFloat(17, Float.NaN);
        raises(IllegalArgumentException.class, "NaN or Inf", () -> layer.forward(x));
        x.setFloat(17, Float.POSITIVE_INFINITY);
        raises(IllegalArgumentException.class, "NaN or Inf", () -> layer.forward(x));
        x.setFloat(17, Float.NEGATIVE_INFINITY);
        raises(IllegalArgumentException.class, "NaN or Inf", () -> layer.route(x));
    }

    @Test
    void topKGreaterThanNumExperts() {
        raises(IllegalArgumentException.class, "num_experts_per_tok (10) > n_routed_experts (9)",
                () -> Cases.cfg(40, 12, 9, 10, 20, 16, 2.0f, Activation.RELU2));
        raises(IllegalArgumentException.class, "num_experts_per_tok must be in 1..32",
                () -> Cases.cfg(40, 12, 64, 33, 20, 16, 2.0f, Activation.RELU2));
        raises(IllegalArgumentException.class, "n_routed_experts must be in 1..2048",
                () -> Cases.cfg(8, 0, 4096, 2, 4, 0, 1.0f, Activation.RELU2));
    }

    @Test
    void expertIdOutOfRange() {
        int t = 5, k = CFG.topK();
        Tensor x = Cases.input(arena, t, CFG.hiddenSize(), 5);
        Tensor ids = arena.allocateTensor(DType.I32, t, k).fill(1);
        ids.setInt(7, CFG.numExperts());
        Tensor offsets = arena.allocateTensor(DType.I32, CFG.numExperts() + 1);
        Tensor rows = arena.allocateTensor(DType.I32, (long) t * k);
        Tensor latent = arena.allocateTensor(DType.F32, (long) t * k, CFG.expertWidth());
        raises(IllegalArgumentException.class, "expert id 9 at token 2, k 1 is out of range",
                () -> layer.kernels().dispatch(x, ids, offsets, rows, latent));
        ids.setInt(7, -3);
        raises(IllegalArgumentException.class, "expert id -3", () -> layer.kernels().dispatch(x, ids, offsets, rows, latent));
        // A bad permutation handed to combine is caught too.
        Tensor w = arena.allocateTensor(DType.F32, t, k).fill(0.1f);
        rows.fill(0);
        rows.setInt(3, t * k);
        Tensor eo = arena.allocateTensor(DType.F32, (long) t * k, CFG.expertWidth()).fill(1);
        Tensor out = arena.allocateTensor(DType.F32, t, CFG.hiddenSize());
        raises(IllegalArgumentException.class, "sortedRowOfSlot[3]", () -> layer.kernels().combine(x, w, rows, eo, out));
    }

    @Test
    void closedArena() {
        HostArena a = HostArena.shared("closing");
        Tensor x = Cases.input(a, 2, CFG.hiddenSize(), 6);
        a.close();
        raises(IllegalStateException.class, "is closed", () -> layer.forward(x));
        raises(IllegalStateException.class, "is closed", () -> a.allocate(8));
    }

    @Test
    void closedLayerAndClosedWeights() {
        HostArena wa = HostArena.shared("weights");
        MoeWeights w = MoeWeights.random(CFG, DType.F32, 9, wa);
        MoeLayer l = MoeLayer.of(w, Backends.cpu());
        Tensor x = Cases.input(arena, 2, CFG.hiddenSize(), 7);
        l.forward(x);
        wa.close();
        raises(IllegalStateException.class, "weights' arena 'weights' is closed", () -> l.forward(x));
        l.close();
        raises(IllegalStateException.class, "closed", () -> l.forward(x));
    }

    @Test
    void tensorFromAnotherThreadsConfinedArena() throws Exception {
        try (HostArena confined = HostArena.confined("mine")) {
            Tensor x = Cases.input(confined, 2, CFG.hiddenSize(), 8);
            CompletableFuture<Tensor> f = CompletableFuture.supplyAsync(() -> layer.forward(x));
            ExecutionException e = assertThrows(ExecutionException.class, f::get);
            assertInstanceOf(WrongThreadException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("confined"), e.getCause().getMessage());
        }
    }

    @Test
    void mismatchedWeights() {
        try (HostArena wa = HostArena.shared("w")) {
            MoeWeights good = MoeWeights.random(CFG, DType.BF16, 10, wa);
            Tensor[] ups = new Tensor[CFG.numExperts()];
            Tensor[] downs = new Tensor[CFG.numExperts()];
            for (int e = 0; e < ups.length; e++) {
                ups[e] = good.expertUp(e).data();
                downs[e] = good.expertDown(e).data();
            }
            ups[4] = wa.allocateTensor(DType.BF16, CFG.intermediateSize(), CFG.expertWidth() + 1);
            raises(IllegalArgumentException.class, "experts.4.up_proj.weight has shape", () -> new MoeWeights(CFG,
                    good.gate().data(), good.gateBias(), good.latentDown().data(), good.latentUp().data(), ups, null, downs,
                    good.sharedUp().data(), null, good.sharedDown().data()));
            ups[4] = wa.allocateTensor(DType.F16, CFG.intermediateSize(), CFG.expertWidth());
            raises(IllegalArgumentException.class, "experts.4.up_proj.weight must be BF16 or F32, got F16", () -> new MoeWeights(CFG,
                    good.gate().data(), good.gateBias(), good.latentDown().data(), good.latentUp().data(), ups, null, downs,
                    good.sharedUp().data(), null, good.sharedDown().data()));
        }
    }
}
