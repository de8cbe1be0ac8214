package dev.latentmoe.kernels.cuda;

import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.spi.BackendProvider;

/** Registers the CUDA backend ({@code "cuda"}) with {@link dev.latentmoe.kernels.Backends}. */
public final class CudaBackendProvider implements BackendProvider {
    /** For {@link java.util.ServiceLoader}. */
    public CudaBackendProvider() {}

    @Override public String name() { return CudaBackend.NAME; }

    /** Never throws: without a library, driver or GPU the backend reports itself unavailable. */
    @Override public Backend create() { return CudaBackend.instance(); }
}
