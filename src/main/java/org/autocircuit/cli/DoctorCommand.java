package org.autocircuit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.autocircuit.kernels.CudaSupport;
import org.autocircuit.kernels.KernelAvailability;
import org.autocircuit.kernels.KernelSelection;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.kernels.NativeKernelsLib;
import org.bytedeco.javacpp.Loader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Reports what this installation can run on: the kernels (native or reference, which variant, why not native),
 * libtorch (version, CPU or CUDA build), the CUDA devices (through the JavaCPP CUDA presets of the gpu profile) and
 * the CUDA libraries libtorch's CUDA build needs. Never fails: what is missing is reported, with how to fix it.
 */
@Command(name = "doctor", mixinStandardHelpOptions = true,
    description = "Report the kernels, the libtorch build, the CUDA devices and libraries this installation can use.")
final class DoctorCommand implements Callable<Integer> {

    @Option(names = "--json", description = "Print JSON.") boolean json;

    @Override
    public Integer call() throws Exception {
        Map<String, Object> report = collect();
        if (json) {
            System.out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(report));
        } else {
            printText(report);
        }
        return 0;
    }

    /** The report as nested maps and lists (the JSON of {@code --json}). */
    static Map<String, Object> collect() {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("kernels", kernels());
        CudaSupport.Status status = CudaSupport.status();
        Map<String, Object> libtorch = new LinkedHashMap<>();
        libtorch.put("version", presetVersion());
        libtorch.put("build", status.libtorchCudaBuild() ? "cuda" : "cpu");
        libtorch.put("gpu_jar_on_classpath", status.gpuJarOnClasspath());
        libtorch.put("cuda_device_count", status.torchDeviceCount());
        libtorch.put("detail", status.detail());
        report.put("libtorch", libtorch);

        CudaSupport.Runtime runtime = CudaSupport.runtime();
        Map<String, Object> cuda = new LinkedHashMap<>();
        cuda.put("presets_on_classpath", runtime.presetsOnClasspath());
        cuda.put("runtime_version", runtime.runtimeVersion() == 0 ? null : versionString(runtime.runtimeVersion()));
        cuda.put("driver_version", runtime.driverVersion() == 0 ? null : versionString(runtime.driverVersion()));
        cuda.put("device_count", runtime.devices().size());
        List<Map<String, Object>> devices = new ArrayList<>();
        for (CudaSupport.DeviceInfo d : runtime.devices()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("device", "cuda:" + d.index());
            m.put("name", d.name());
            m.put("compute_capability", d.major() + "." + d.minor());
            m.put("memory_bytes", d.totalMemoryBytes());
            m.put("multiprocessors", d.multiProcessors());
            m.put("memory_clock_khz", d.memoryClockKHz());
            m.put("bus_width_bits", d.busWidthBits());
            m.put("peak_bandwidth_gbs", Math.round(d.peakBandwidthGBs() * 10) / 10.0);
            devices.add(m);
        }
        cuda.put("devices", devices);
        cuda.put("error", runtime.error());
        report.put("cuda", cuda);

        List<CudaSupport.Library> libs = CudaSupport.libraries();
        List<Map<String, Object>> libraries = new ArrayList<>();
        for (CudaSupport.Library l : libs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", l.file());
            m.put("what", l.what());
            m.put("in_redist_jar", l.inRedistJar());
            m.put("found", l.found());
            m.put("found_at", l.foundAt());
            m.put("provide", l.found() ? null : l.provide());
            libraries.add(m);
        }
        report.put("cuda_libraries", libraries);
        report.put("cuda_libraries_note", "needed only by libtorch's CUDA build (mvn -Pgpu); when one is missing: "
            + CudaSupport.PROVIDE_HINT);
        report.put("summary", summary(status, runtime, libs));
        return report;
    }

    private static Map<String, Object> kernels() {
        Map<String, Object> k = new LinkedHashMap<>();
        k.put("mode", KernelSelection.configuredMode().name().toLowerCase(Locale.ROOT));
        boolean available = KernelAvailability.isAvailable();
        k.put("native_available", available);
        String selected;
        try {
            selected = Kernels.best().name();
        } catch (Throwable t) {
            selected = "none: " + t.getMessage();
        }
        k.put("selected", selected);
        k.put("cpu_variant", available ? NativeKernelsLib.cpuIsa() : null);
        k.put("cuda_compiled", available && NativeKernelsLib.cudaCompiled());
        k.put("build_info", available ? NativeKernelsLib.buildInfo() : null);
        Throwable cause = KernelAvailability.unavailabilityCause();
        k.put("unavailability_cause", cause == null ? null : cause.toString());
        return k;
    }

    private static String presetVersion() {
        try {
            return Loader.getVersion("org.bytedeco", "pytorch");
        } catch (Exception e) {
            return null;
        }
    }

    /** 13030 -> "13.3" (CUDA's encoding: 1000 * major + 10 * minor). */
    static String versionString(int v) {
        return (v / 1000) + "." + (v % 1000) / 10;
    }

    static String summary(CudaSupport.Status status, CudaSupport.Runtime runtime, List<CudaSupport.Library> libs) {
        if (!status.gpuJarOnClasspath()) {
            return "CPU only: this is the CPU build of libtorch (no pytorch -gpu jar on the classpath), so no CUDA device "
                + "can be used; `mvn -Pgpu package` builds with libtorch's CUDA build";
        }
        String missing = CudaSupport.missingLibrariesMessage(libs);
        if (!status.libtorchCudaBuild()) {
            return "libtorch's CUDA build is on the classpath but was not loaded (" + status.detail() + ")";
        }
        if (status.torchDeviceCount() == 0) {
            return "libtorch's CUDA build is loaded but sees no CUDA device" + (runtime.error() == null ? "" : " ("
                + runtime.error() + ")");
        }
        return status.torchDeviceCount() + " CUDA device(s) usable with --device cuda[:N]" + (missing.isEmpty() ? "" : "; " + missing);
    }

    @SuppressWarnings("unchecked")
    private static void printText(Map<String, Object> report) {
        Map<String, Object> k = (Map<String, Object>) report.get("kernels");
        System.out.println("kernels:   " + k.get("selected") + " (mode " + k.get("mode") + ")"
            + ((Boolean) k.get("native_available") ? ", native " + k.get("cpu_variant") + ", CUDA kernels "
                + ((Boolean) k.get("cuda_compiled") ? "linked" : "not linked") : ", native unavailable: " + k.get("unavailability_cause")));
        Map<String, Object> t = (Map<String, Object>) report.get("libtorch");
        System.out.println("libtorch:  " + t.get("version") + ", " + t.get("build") + " build (" + t.get("detail") + ")");
        Map<String, Object> c = (Map<String, Object>) report.get("cuda");
        System.out.println("cuda:      " + (c.get("error") == null ? c.get("device_count") + " device(s), runtime "
            + c.get("runtime_version") + ", driver " + c.get("driver_version") : c.get("error")));
        for (Map<String, Object> d : (List<Map<String, Object>>) c.get("devices")) {
            System.out.printf("  %s  %s  sm %s  %.1f GiB  %d SMs  peak %.0f GB/s (%d MHz x %d bits)%n", d.get("device"),
                d.get("name"), d.get("compute_capability"), ((Long) d.get("memory_bytes")) / (double) (1L << 30),
                d.get("multiprocessors"), d.get("peak_bandwidth_gbs"), ((Integer) d.get("memory_clock_khz")) / 1000,
                d.get("bus_width_bits"));
        }
        System.out.println("CUDA libraries (for libtorch's CUDA build):");
        for (Map<String, Object> l : (List<Map<String, Object>>) report.get("cuda_libraries")) {
            System.out.printf("  %-22s %-28s %s%n", l.get("file"), l.get("what"),
                (Boolean) l.get("found") ? "found: " + l.get("found_at") : "MISSING: " + l.get("provide"));
        }
        System.out.println("summary:   " + report.get("summary"));
    }
}
