package dev.latentmoe.kernels.cpu;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.spi.BackendProvider;

/** Registers the CPU backend ({@code "cpu"}) with {@link dev.latentmoe.kernels.Backends}, like any other backend. */
public final class CpuBackendProvider implements BackendProvider {
    /** For {@link java.util.ServiceLoader}. */
    public CpuBackendProvider() {}

    @Override public String name() { return "cpu"; }

    /** Never throws: without {@code liblatentmoe.so} the backend reports itself unavailable with the reason. */
    @Override public Backend create() { return CpuBackend.INSTANCE; }
}
