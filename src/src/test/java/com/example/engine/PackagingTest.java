package com.example.engine;

import dev.latentmoe.bindings.runtime.NativeLibraries;
import dev.latentmoe.bindings.runtime.NativeLibraryBundle;
import dev.latentmoe.kernels.Backend;
import dev.latentmoe.kernels.Backends;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The published artifacts as an outside project gets them: the natives come out of the installed
 * platform-classified jar (no latentmoe.native.dir), backends and native jars are found with
 * ServiceLoader, on the class path and on the module path.
 */
class PackagingTest {
    static final String VERSION = "0.1.0-SNAPSHOT";
    static final boolean CUDA_JAR = Boolean.getBoolean("e2e.cudaJar");

    @Test
    void nativesLoadFromTheClassifiedJar() {
        assertNull(System.getProperty("latentmoe.native.dir"), "the e2e run must not point at the build folder");
        Backend cpu = Backends.cpu();
        assertTrue(cpu.isAvailable(), () -> "CPU backend: " + cpu.unavailableReason());
        String source = NativeLibraries.loadedSource(NativeLibraries.CPU).orElseThrow();
        System.out.println("native liblatentmoe.so from " + source);
        assertTrue(source.startsWith("jar:file:") && source.contains("latentmoe-native-" + VERSION + "-linux-x86_64.jar!"), source);
        assertTrue(source.endsWith("(latentmoe-native " + VERSION + ", linux-x86_64)"), source);
        Path extracted = NativeLibraries.loadedPath(NativeLibraries.CPU).orElseThrow();
        assertTrue(extracted.startsWith(Path.of(System.getProperty("java.io.tmpdir")))
                && extracted.getParent().getFileName().toString().startsWith("latentmoe-native-"), extracted::toString);
    }

    @Test
    void backendsAndNativeJarsAreServices() {
        List<String> names = new ArrayList<>();
        for (Backend b : Backends.all()) names.add(b.name());
        assertEquals(List.of("cpu", "cuda"), names, "backends registered through ServiceLoader, cpu first");
        List<String> bundles = new ArrayList<>();
        for (NativeLibraryBundle b : ServiceLoader.load(NativeLibraryBundle.class)) bundles.add(b.classifier());
        assertEquals(CUDA_JAR ? List.of("linux-x86_64", "linux-x86_64-cuda13") : List.of("linux-x86_64"), bundles);

        Backend cuda = Backends.get("cuda");
        NativeLibraries.Result lib = NativeLibraries.tryLoad(NativeLibraries.CUDA);
        System.out.println("native cuda: " + (lib.isLoaded() ? NativeLibraries.loadedSource(NativeLibraries.CUDA).orElse("?")
                : lib.reason()) + "; backend " + (cuda.isAvailable() ? "available" : "unavailable: " + cuda.unavailableReason()));
        if (CUDA_JAR) {
            assertTrue(lib.isLoaded(), lib::reason);   // dlopen needs no GPU: the CUDA runtime is linked in statically
            String source = NativeLibraries.loadedSource(NativeLibraries.CUDA).orElseThrow();
            assertTrue(source.contains("latentmoe-native-" + VERSION + "-linux-x86_64-cuda13.jar!")
                    && source.endsWith("(latentmoe-native " + VERSION + ", linux-x86_64-cuda13)"), source);
            if (!cuda.isAvailable()) {
                assertFalse(cuda.unavailableReason().contains("not found"), cuda.unavailableReason());
            }
        } else {
            assertFalse(cuda.isAvailable());
            assertTrue(cuda.unavailableReason().contains("linux-x86_64-cuda13"), cuda.unavailableReason());
        }
    }

    /**
     * A JVM whose library jars are all on the module path (the native jar an automatic module that
     * nobody requires): the resolver binds it as a NativeLibraryBundle provider, with no --add-modules for it.
     */
    @Test
    void onTheModulePathTheNativeJarIsBoundAsAService() throws Exception {
        List<String> modules = new ArrayList<>(), classes = new ArrayList<>();
        for (String e : System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")).split(File.pathSeparator)) {
            if (e.endsWith(".jar")) modules.add(e);
            else if (!e.isBlank()) classes.add(e);
        }
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = List.of(java.toString(),
                "--enable-native-access=dev.latentmoe.bindings,dev.latentmoe.memory,dev.latentmoe.kernels,ALL-UNNAMED",
                "--add-opens=java.base/java.nio=org.apache.arrow.memory.core",
                "--module-path", String.join(File.pathSeparator, modules),
                "--add-modules", "dev.latentmoe.kernels",
                "-cp", String.join(File.pathSeparator, classes),
                ModulePathProbe.class.getName());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "probe timed out");
        System.out.print(out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("module dev.latentmoe.kernels") && out.contains("latentmoe-native-" + VERSION + "-linux-x86_64.jar!"), out);
        assertTrue(out.contains("forward ok"), out);
    }
}
