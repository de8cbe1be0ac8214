package dev.latentmoe.kernels;

import dev.latentmoe.kernels.cpu.CpuBackend;
import dev.latentmoe.kernels.spi.BackendProvider;
import dev.latentmoe.kernels.spi.UnavailableBackend;
import dev.latentmoe.memory.Device;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

/** Finds backends by name: the built-in CPU one and any registered through {@link BackendProvider}. */
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
                    m.put("cpu", cpu());
                    for (BackendProvider p : ServiceLoader.load(BackendProvider.class)) {
                        Backend b;
                        try {
                            b = p.create();
                        } catch (RuntimeException | LinkageError e) {
                            b = new UnavailableBackend(p.name(), Device.CPU, "provider failed: " + e);
                        }
                        m.putIfAbsent(p.name(), b);
                    }
                    all = m;
                }
                r = all;
            }
        }
        return r;
    }
}
