package com.example.engine;

import dev.latentmoe.bindings.runtime.NativeLibraries;
import dev.latentmoe.kernels.Backends;
import dev.latentmoe.kernels.MoeConfig;
import dev.latentmoe.kernels.MoeKernels;
import dev.latentmoe.kernels.MoeLayer;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.Tensor;

/** Run by PackagingTest in a JVM with the library on the module path: where the natives came from, one forward. */
public final class ModulePathProbe {
    public static void main(String[] args) {
        System.out.println("probe: " + Backends.class.getModule());
        if (!Backends.cpu().isAvailable()) throw new IllegalStateException(Backends.cpu().unavailableReason());
        System.out.println("probe: natives from " + NativeLibraries.loadedSource(NativeLibraries.CPU).orElse("?"));
        MoeConfig c = CallerOwnedEngine.CONFIG;
        try (MoeLayer layer = MoeLayer.random(c, DType.BF16, 1, Backends.cpu()); HostArena a = HostArena.confined("probe")) {
            Tensor x = a.allocateTensor(DType.F32, 2, c.hiddenSize()).fill(0.25f);
            Tensor y = a.allocateTensor(DType.F32, 2, c.hiddenSize());
            MoeKernels.forward(layer.weights(), x, null, null, y, MoeKernels.allocateWorkspace(a, c, MoeKernels.Step.FORWARD, 2));
            if (y.hasNonFinite()) throw new IllegalStateException("non-finite output");
            System.out.println("probe: forward ok");
        }
    }
}
