package dev.latentmoe.kernels.spi;

import dev.latentmoe.kernels.Backend;

/**
 * Service-provider interface: a backend module (the CUDA one) registers an implementation in
 * {@code META-INF/services/dev.latentmoe.kernels.spi.BackendProvider}. {@link #create()} must not
 * throw when its natives are missing; it returns an unavailable backend with the reason instead.
 */
public interface BackendProvider {
    String name();

    Backend create();
}
