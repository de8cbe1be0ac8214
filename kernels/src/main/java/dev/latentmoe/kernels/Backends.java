package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cpu.CpuBackend;
import dev.latentmoe.kernels.spi.BackendProvider;
import dev.latentmoe.kernels.spi.UnavailableBackend;
import dev.latentmoe.memory.Device;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

/**
 * Finds backends by name. Every backend, the CPU and CUDA ones included, is a {@link BackendProvider}
 * found with {@link ServiceLoader} ({@code provides} in a module descriptor, or
 * {@code META-INF/services/dev.latentmoe.kernels.spi.BackendProvider} on the class path), so a
 * backend in another jar registers the same way. The CPU backend is also reachable directly
 * ({@link #cpu()}), and is added under "cpu" if a repackaged jar lost the service file.
 */
public final class Backends {
    private static volatile Map<String, Backend> all;

    private Backends() {}

    /** The native CPU backend (possibly unavailable, with a reason, if its library cannot load). */
    public static Backend cpu() { return CpuBackend.INSTANCE; }

    /** A backend by name ("cpu", "cuda"); an unknown or unloadable one comes back unavailable. */
    public static Backend get(String name) {
        Backend b = registry().get(name);
        if (b != null) return b;
        return new UnavailableBackend(name, "cuda".equals(name) ? Device.cuda(0) : Device.CPU,
                "no backend named '" + name + "' is on the class path (known: " + registry().keySet() + ")");
    }

    /** Every known backend, available or not. */
    public static List<Backend> all() { return List.copyOf(registry().values()); }

    private static Map<String, Backend> registry() {
        Map<String, Backend> r = all;
        if (r == null) {
            synchronized (Backends.class) {
                if (all == null) {
                    Map<String, Backend> m = new LinkedHashMap<>();
                    m.put("cpu", null);   // first in all(), whatever the providers' order
                    Iterator<BackendProvider> it = ServiceLoader.load(BackendProvider.class).iterator();
                    while (true) {
                        BackendProvider p;
                        try {
                            if (!it.hasNext()) break;
                            p = it.next();
                        } catch (ServiceConfigurationError e) {
                            continue;   // a broken provider jar must not take the others down
                        }
                        Backend b;
                        try {
                            b = p.create();
                        } catch (RuntimeException | LinkageError e) {
                            b = new UnavailableBackend(p.name(), Device.CPU, "provider failed: " + e);
                        }
                        m.putIfAbsent(p.name(), b);
                    }
                    m.putIfAbsent("cpu", cpu());   // putIfAbsent replaces the null placeholder
                    all = m;
                }
                r = all;
            }
        }
        return r;
    }
}
