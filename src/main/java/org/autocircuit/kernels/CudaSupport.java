package org.autocircuit.kernels;

import java.io.File;
import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.global.torch;

/**
 * What this process has of CUDA, found without ever crashing the JVM: whether libtorch's CUDA build (the
 * {@code pytorch} {@code linux-x86_64-gpu} jar, {@code mvn -Pgpu}) is on the classpath and loaded, the CUDA
 * devices through the JavaCPP CUDA presets ({@code org.bytedeco:cuda}, reached by reflection so that the default
 * CPU build does not need them), and which of the CUDA libraries libtorch's CUDA build needs can be found. The
 * libraries are looked for as files (never loaded), so a missing one is reported with how to provide it instead
 * of failing inside the dynamic linker. Used by {@link Device#ensureAvailable()} and {@code autocircuit doctor}.
 */
public final class CudaSupport {
    private CudaSupport() {}

    /**
     * libtorch's view: the CUDA build on the classpath and loaded, the devices it sees.
     *
     * @param gpuJarOnClasspath whether the pytorch {@code -gpu} jar (libtorch_cuda) is on the classpath
     * @param libtorchCudaBuild whether libtorch's CUDA library was loaded into this process
     * @param torchDeviceCount  {@code torch.cuda_device_count()} (0 without the CUDA build)
     * @param detail            a short account for messages (what was found, an error)
     */
    public record Status(boolean gpuJarOnClasspath, boolean libtorchCudaBuild, int torchDeviceCount, String detail) {}

    /** One CUDA device as the CUDA runtime reports it. */
    public record DeviceInfo(int index, String name, int major, int minor, long totalMemoryBytes, int memoryClockKHz,
                             int busWidthBits, int multiProcessors) {
        /** Peak DRAM bandwidth in GB/s ({@link #peakBandwidthGBs}). */
        public double peakBandwidthGBs() {
            return CudaSupport.peakBandwidthGBs(memoryClockKHz, busWidthBits);
        }
    }

    /**
     * The CUDA runtime through the JavaCPP CUDA presets.
     *
     * @param presetsOnClasspath whether {@code org.bytedeco.cuda} is on the classpath
     * @param error              why no device could be listed (null when the query worked)
     * @param runtimeVersion     e.g. 13030 for 13.3, 0 when unknown
     * @param driverVersion      0 when no driver is installed
     * @param devices            the devices (empty without a driver or device)
     */
    public record Runtime(boolean presetsOnClasspath, String error, int runtimeVersion, int driverVersion,
                          List<DeviceInfo> devices) {}

    /**
     * A shared library libtorch's CUDA build needs.
     *
     * @param file       the file name the dynamic linker looks for
     * @param what       the library, in words
     * @param inRedistJar whether the {@code cuda-redist} jar of the {@code gpu} profile carries it
     * @param foundAt    where it was found (a folder, or the redist jar), or null
     * @param provide    how to provide it when missing
     */
    public record Library(String file, String what, boolean inRedistJar, String foundAt, String provide) {
        public boolean found() {
            return foundAt != null;
        }
    }

    /** Peak DRAM bandwidth in GB/s: two transfers per memory clock (kHz), bus width / 8 bytes each. */
    public static double peakBandwidthGBs(int memoryClockKHz, int busWidthBits) {
        return 2.0 * memoryClockKHz * 1e3 * (busWidthBits / 8.0) / 1e9;
    }

    /** The platform folder of JavaCPP's resources, e.g. {@code linux-x86_64}. */
    static String platform() {
        return Loader.getPlatform();
    }

    /** Whether the pytorch {@code linux-x86_64-gpu} jar is on the classpath. */
    public static boolean gpuJarOnClasspath() {
        return resourceExists("/org/bytedeco/pytorch/" + platform() + "-gpu/libtorch_cuda.so");
    }

    private static boolean resourceExists(String name) {
        return CudaSupport.class.getResource(name) != null;
    }

    /** libtorch's CUDA status. Loads libtorch (the CPU or the CUDA build, whichever JavaCPP picks); never throws. */
    public static Status status() {
        boolean jar = gpuJarOnClasspath();
        try {
            Loader.load(torch.class);
            boolean loaded = Loader.getLoadedLibraries().keySet().stream().anyMatch(k -> k.contains("torch_cuda"));
            int count = loaded ? Math.max(0, (int) torch.cuda_device_count()) : 0;
            String detail = (jar ? "pytorch -gpu jar on the classpath" : "no pytorch -gpu jar on the classpath")
                    + (loaded ? ", libtorch_cuda loaded, " + count + " device(s)" : jar ? ", libtorch_cuda not loaded: "
                    + whyNotLoaded() : "");
            return new Status(jar, loaded, count, detail);
        } catch (Throwable t) {
            return new Status(jar, false, 0, "libtorch failed to load: " + t);
        }
    }

    /** The JavaCPP property that makes it load the natives of the pytorch {@code -gpu} jar. */
    public static final String EXTENSION_PROPERTY = "org.bytedeco.javacpp.platform.extension";

    /**
     * Why libtorch_cuda is not loaded although the -gpu jar is there: JavaCPP loads the CPU natives unless
     * {@code -Dorg.bytedeco.javacpp.platform.extension=-gpu} is set, and with it libtorch_cuda is a preload that
     * JavaCPP skips silently when the dynamic linker cannot resolve its CUDA libraries.
     */
    static String whyNotLoaded() {
        if (!"-gpu".equals(System.getProperty(EXTENSION_PROPERTY))) {
            return "JavaCPP loads libtorch's CPU natives unless the JVM runs with -D" + EXTENSION_PROPERTY + "=-gpu";
        }
        String missing = missingLibrariesMessage(libraries());
        return missing.isEmpty() ? "the dynamic linker refused it (run with -Dorg.bytedeco.javacpp.logger.debug=true to see why)"
                : missing;
    }

    /** The CUDA runtime and its devices through the JavaCPP CUDA presets; never throws. */
    public static Runtime runtime() {
        Class<?> cudart;
        try {
            cudart = Class.forName("org.bytedeco.cuda.global.cudart", false, CudaSupport.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            return new Runtime(false, "the JavaCPP CUDA presets (org.bytedeco:cuda) are not on the classpath: build "
                    + "with `mvn -Pgpu package`", 0, 0, List.of());
        }
        try {
            Class.forName(cudart.getName(), true, cudart.getClassLoader());  // loads libcudart (the redist jar or the system's)
            int runtimeVersion = intCall(cudart, "cudaRuntimeGetVersion");
            int driverVersion = intCall(cudart, "cudaDriverGetVersion");
            int[] count = new int[1];
            int status = intOut(cudart, "cudaGetDeviceCount", count);
            if (status != 0) {
                return new Runtime(true, "cudaGetDeviceCount: " + errorString(cudart, status)
                        + (driverVersion == 0 ? " (no NVIDIA driver installed)" : ""), runtimeVersion, driverVersion, List.of());
            }
            List<DeviceInfo> devices = new ArrayList<>();
            for (int d = 0; d < count[0]; d++) devices.add(deviceInfo(cudart, d));
            return new Runtime(true, count[0] == 0 ? "no CUDA device" : null, runtimeVersion, driverVersion, devices);
        } catch (Throwable t) {
            // The presets' JNI library links the driver's libcuda.so.1: without a driver it does not load.
            boolean driver = libraries().stream().anyMatch(l -> l.file().equals("libcuda.so.1") && l.found());
            String why = driver ? "" : "no NVIDIA driver (libcuda.so.1 not found), which the JavaCPP CUDA presets need; ";
            return new Runtime(true, why + "the CUDA runtime could not be queried: " + t, 0, 0, List.of());
        }
    }

    private static int intCall(Class<?> cudart, String name) throws ReflectiveOperationException {
        int[] out = new int[1];
        intOut(cudart, name, out);
        return out[0];
    }

    /** Calls {@code int name(IntPointer)} and copies the value into out[0]; returns the CUDA status. */
    private static int intOut(Class<?> cudart, String name, int[] out) throws ReflectiveOperationException {
        try (IntPointer p = new IntPointer(1)) {
            int status = (int) cudart.getMethod(name, IntPointer.class).invoke(null, p);
            out[0] = p.get();
            return status;
        }
    }

    private static String errorString(Class<?> cudart, int status) {
        try {
            Object s = cudart.getMethod("cudaGetErrorString", int.class).invoke(null, status);
            return ((org.bytedeco.javacpp.BytePointer) s).getString() + " (" + status + ")";
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "CUDA error " + status;
        }
    }

    private static DeviceInfo deviceInfo(Class<?> cudart, int device) throws ReflectiveOperationException {
        Class<?> propClass = Class.forName("org.bytedeco.cuda.cudart.cudaDeviceProp", true, cudart.getClassLoader());
        Pointer prop = (Pointer) propClass.getConstructor().newInstance();
        try {
            int status = (int) cudart.getMethod("cudaGetDeviceProperties", propClass, int.class).invoke(null, prop, device);
            if (status != 0) throw new IllegalStateException("cudaGetDeviceProperties(" + device + "): " + errorString(cudart, status));
            String name = ((org.bytedeco.javacpp.BytePointer) propClass.getMethod("name").invoke(prop)).getString();
            int major = (int) propClass.getMethod("major").invoke(prop);
            int minor = (int) propClass.getMethod("minor").invoke(prop);
            long memory = (long) propClass.getMethod("totalGlobalMem").invoke(prop);
            int sms = (int) propClass.getMethod("multiProcessorCount").invoke(prop);
            int clock = attribute(cudart, "cudaDevAttrMemoryClockRate", device);
            int bus = attribute(cudart, "cudaDevAttrGlobalMemoryBusWidth", device);
            return new DeviceInfo(device, name, major, minor, memory, clock, bus, sms);
        } finally {
            prop.close();
        }
    }

    private static int attribute(Class<?> cudart, String attributeName, int device) throws ReflectiveOperationException {
        int attr = cudart.getField(attributeName).getInt(null);
        try (IntPointer p = new IntPointer(1)) {
            int status = (int) cudart.getMethod("cudaDeviceGetAttribute", IntPointer.class, int.class, int.class)
                    .invoke(null, p, attr, device);
            return status == 0 ? p.get() : 0;
        }
    }

    // ---- libraries ----

    /** The libraries libtorch's CUDA build (2.13, CUDA 13) links, from the NEEDED entries of its .so files. */
    private static final String[][] LIBRARIES = {
        // file, what, in the cuda-redist jar?, how to provide it when missing
        {"libcuda.so.1", "NVIDIA driver (CUDA driver API)", "no", "the NVIDIA driver, CUDA 13 capable (it comes with the driver, "
            + "never with the toolkit or a jar)"},
        {"libcudart.so.13", "CUDA runtime", "yes", "the cuda-redist jar of the gpu profile, or CUDA 13's cuda-cudart package"},
        {"libnvrtc.so.13", "NVRTC (runtime compilation)", "yes", "the cuda-redist jar, or CUDA 13's cuda-nvrtc package"},
        {"libcurand.so.10", "cuRAND", "yes", "the cuda-redist jar, or CUDA 13's libcurand package"},
        {"libcufft.so.12", "cuFFT", "yes", "the cuda-redist jar, or CUDA 13's libcufft package"},
        {"libcufile.so.0", "cuFile (GPUDirect Storage)", "yes", "the cuda-redist jar, or CUDA 13's libcufile package"},
        {"libcublas.so.13", "cuBLAS", "no", "CUDA 13's libcublas package (e.g. apt install libcublas-13-0)"},
        {"libcublasLt.so.13", "cuBLASLt", "no", "CUDA 13's libcublas package (e.g. apt install libcublas-13-0)"},
        {"libcusparse.so.12", "cuSPARSE", "no", "CUDA 13's libcusparse package (e.g. apt install libcusparse-13-0)"},
        {"libcusolver.so.12", "cuSOLVER", "no", "CUDA 13's libcusolver package (e.g. apt install libcusolver-13-0)"},
        {"libcudnn.so.9", "cuDNN 9", "no", "cuDNN 9 for CUDA 13 (e.g. apt install cudnn9-cuda-13)"},
        {"libcudnn_ops.so.9", "cuDNN 9 ops", "no", "cuDNN 9 for CUDA 13 (e.g. apt install cudnn9-cuda-13)"},
        {"libcudnn_cnn.so.9", "cuDNN 9 cnn", "no", "cuDNN 9 for CUDA 13 (e.g. apt install cudnn9-cuda-13)"},
        {"libcudnn_adv.so.9", "cuDNN 9 adv", "no", "cuDNN 9 for CUDA 13 (e.g. apt install cudnn9-cuda-13)"},
        {"libcudnn_graph.so.9", "cuDNN 9 graph", "no", "cuDNN 9 for CUDA 13 (e.g. apt install cudnn9-cuda-13)"},
        {"libnccl.so.2", "NCCL", "no", "NCCL 2 for CUDA 13 (e.g. apt install libnccl2)"},
    };

    /** The advice for any missing library: where to put it so that libtorch's CUDA build finds it. */
    public static final String PROVIDE_HINT = "add the folder holding it to LD_LIBRARY_PATH before starting the JVM, and "
            + "run with -Dorg.bytedeco.javacpp.pathsFirst=true so that JavaCPP prefers the system's CUDA libraries to "
            + "the copies in its jars";

    /** Each library libtorch's CUDA build needs, and where it was found; looks for files only, loads nothing. */
    public static List<Library> libraries() {
        List<Path> folders = searchFolders();
        Set<String> ldconfig = ldconfigNames();
        String redistPrefix = "/org/bytedeco/cuda/" + platform() + "/";
        List<Library> out = new ArrayList<>();
        for (String[] lib : LIBRARIES) {
            String file = lib[0];
            boolean redistCandidate = lib[2].equals("yes");
            String foundAt = null;
            for (Path folder : folders) {
                if (Files.isRegularFile(folder.resolve(file))) {
                    foundAt = folder.toString();
                    break;
                }
            }
            if (foundAt == null && ldconfig.contains(file)) foundAt = "the dynamic linker's cache (ldconfig -p)";
            if (foundAt == null && redistCandidate && resourceExists(redistPrefix + file)) foundAt = "the cuda-redist jar";
            out.add(new Library(file, lib[1], redistCandidate, foundAt, lib[3]));
        }
        return out;
    }

    /** LD_LIBRARY_PATH, java.library.path and the usual CUDA and system library folders, existing ones only. */
    static List<Path> searchFolders() {
        Set<String> names = new LinkedHashSet<>();
        for (String var : new String[] {System.getenv("LD_LIBRARY_PATH"), System.getProperty("java.library.path")}) {
            if (var == null) continue;
            for (String s : var.split(File.pathSeparator)) if (!s.isBlank()) names.add(s);
        }
        String cudaHome = System.getenv("CUDA_HOME");
        if (cudaHome != null) names.add(cudaHome + "/lib64");
        names.add("/usr/local/cuda/lib64");
        names.add("/usr/local/cuda/targets/x86_64-linux/lib");
        names.add("/usr/lib/x86_64-linux-gnu");
        names.add("/usr/lib64");
        names.add("/usr/lib");
        List<Path> out = new ArrayList<>();
        for (String n : names) {
            Path p = Path.of(n);
            if (Files.isDirectory(p)) out.add(p);
        }
        return out;
    }

    /** The library file names in the dynamic linker's cache ({@code ldconfig -p}), empty when it cannot be read. */
    static Set<String> ldconfigNames() {
        Set<String> out = new LinkedHashSet<>();
        for (String exe : new String[] {"/sbin/ldconfig", "/usr/sbin/ldconfig"}) {
            if (!Files.isExecutable(Path.of(exe))) continue;
            try {
                Process p = new ProcessBuilder(exe, "-p").redirectErrorStream(true).start();
                byte[] bytes = p.getInputStream().readAllBytes();
                if (!p.waitFor(5, TimeUnit.SECONDS)) p.destroyForcibly();
                for (String line : new String(bytes, StandardCharsets.UTF_8).split("\n")) {
                    String t = line.trim();
                    int space = t.indexOf(' ');
                    if (space > 0 && t.startsWith("lib")) out.add(t.substring(0, space));
                }
                return out;
            } catch (IOException e) {
                return out;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return out;
            }
        }
        return out;
    }

    /** The missing libraries as one message (empty when none is missing). */
    public static String missingLibrariesMessage(List<Library> libraries) {
        List<String> missing = new ArrayList<>();
        for (Library l : libraries) if (!l.found()) missing.add(l.file() + " (" + l.what() + ": " + l.provide() + ")");
        if (missing.isEmpty()) return "";
        return "libtorch's CUDA build needs libraries that were not found: " + String.join(", ", missing) + "; "
                + PROVIDE_HINT;
    }
}
