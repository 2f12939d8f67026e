"""The benchmark report's plots (gnuplot): map-time.png, large-map.png,
large-init.png, running.png and parallel-map.png."""

import os
import subprocess

from report_fmt import med, ratio, sizes as map_sizes
from report_large import KIND_TITLE, REF_TITLE, RUNNING_METRICS, \
    VARIANT_TITLE, running_medians, sizes, threads_used, values


def gnuplot(work, name, script):
    """Run a gnuplot script, kept as WORK/NAME."""
    gp = os.path.join(work, name)
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", gp], check=True)


def spread_row(xs):
    """Median, min and max of runs, as a gnuplot data row's columns."""
    if not xs:
        return ["?"] * 3
    return ["%.4f" % med(xs), "%.4f" % min(xs), "%.4f" % max(xs)]


def spread_file(path, header, keys, cols, runs):
    """A gnuplot data file: a row per key, the spread of runs(key, col)
    for each column."""
    with open(path, "w") as f:
        f.write("# %s\n" % header)
        for key in keys:
            row = [key]
            for c in cols:
                row += spread_row(runs(key, c))
            f.write(" ".join(row) + "\n")


def plot(raw, docs, work, png_map):
    """Every plot the parts of raw.json have data for."""
    plot_map(raw, docs, work, png_map)
    plot_large_parts(raw, docs, work, "large-map.png", "large-init.png",
                     "running.png")


def plot_map(raw, docs, work, png_name):
    mp = raw.get("map")
    if not mp:
        return
    dat = os.path.join(work, "map-time.dat")
    spread_file(dat, "MiB, then median min max for: qemu-iommufd qemu-legacy "
                "ref-iommufd ref-type1", map_sizes(raw),
                ("qemu-iommufd", "qemu-legacy", "ref-iommufd", "ref-type1"),
                lambda size, v: mp["runs"][size][v])
    script = """
set terminal pngcairo size 900,600 font "sans,11" noenhanced
set output '%s'
set title "Time in the DMA map calls at start-up, against guest RAM\\n(L1 under TCG; median of runs, bars min-max)"
set xlabel "guest RAM (MiB)"
set ylabel "time in map calls (s)"
set key top left
set grid
set xrange [0:%d]
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set xtics (%s)
plot '%s' using ($1-25):2:3:4 with yerrorlines lw 2 pt 7 title "QEMU, iommufd (IOMMU_IOAS_MAP)", \\
     '' using ($1):5:6:7 with yerrorlines lw 2 pt 5 title "QEMU, legacy (VFIO_IOMMU_MAP_DMA)", \\
     '' using ($1+25):8:9:10 with yerrorlines lw 2 pt 9 title "reference, iommufd (ioas-map-ref)", \\
     '' using ($1+50):11:12:13 with yerrorlines lw 1 dt 2 pt 11 title "reference, type1 (ioas-map-ref)"
""" % (os.path.join(docs, png_name),
       int(max(int(s) for s in mp["runs"]) * 1.1),
       ", ".join(map_sizes(raw)), dat)
    gnuplot(work, "map-time.gp", script)


PNG_PARALLEL = "parallel-map.png"


def plot_large_parts(raw, docs, work, png_map, png_init, png_running):
    if "parallel" in raw:
        plot_parallel(raw["parallel"], docs, work, PNG_PARALLEL)
    if "large" in raw:
        plot_large(raw["large"], docs, work, png_map, png_init)
    if "running" in raw:
        plot_running(raw["running"], docs, work, png_running)


def plot_large(lg, docs, work, png_map, png_init):
    kinds = list(lg["runs"])
    for what, png, ylabel, variants, refs in (
            ("map", png_map, "map time (s, wall)",
             ["iommufd", "iommufd-serial", "legacy"],
             ["iommufd-n", "iommufd-1"]),
            ("ready", png_init, "exec to guest init (s)",
             ["none", "iommufd", "iommufd-serial", "legacy"], [])):
        cols = variants + refs
        plots = []
        for kind in kinds:
            dat = os.path.join(work, "large-%s-%s.dat" % (what, kind))
            spread_file(
                dat, "GiB, then median min max for: %s" % " ".join(cols),
                sizes(lg), cols,
                lambda g, c: values(lg, kind, g, c, what) if c in variants
                else lg["ref"].get(kind, {}).get(g, {}).get(c, []))
            lines = []
            for j, c in enumerate(cols):
                title = (VARIANT_TITLE.get(c) or REF_TITLE[c]).replace(
                    "%s", threads_used(lg) if c == "iommufd"
                    else str(lg["cpus"]))
                lines.append("'%s' using 1:%d:%d:%d with yerrorlines lw %d "
                             "%s title \"%s\"" % (
                                 dat, 2 + 3 * j, 3 + 3 * j, 4 + 3 * j,
                                 1 if c in refs else 2,
                                 "dt 2" if c in refs else "", title))
            plots.append("set title \"%s\"\nplot %s" % (
                KIND_TITLE[kind], ", \\\n     ".join(lines)))
        script = """
set terminal pngcairo size %d,520 font "sans,10" noenhanced
set output '%s'
set multiplot layout 1,%d title "%s against guest RAM (L1 under TCG, 2 vCPUs; median, bars min-max)"
set xlabel "guest RAM (GiB)"
set ylabel "%s"
set key top left
set grid
set logscale x 2
set xrange [0.8:%d]
set yrange [0:*]
set xtics (%s)
%s
unset multiplot
""" % (420 * len(kinds), os.path.join(docs, png), len(kinds),
            "Map time" if what == "map" else "Exec to guest init",
            ylabel, int(max(lg["sizes_gib"]) * 1.25),
            ", ".join(sizes(lg)), "\n".join(plots))
        gnuplot(work, "large-%s.gp" % what, script)


def plot_running(rn, docs, work, png):
    m = running_medians(rn)
    dat = os.path.join(work, "running.dat")
    with open(dat, "w") as f:
        f.write("# metric legacy iommufd (iommufd / legacy)\n")
        for k, title, _ in RUNNING_METRICS:
            r = ratio(m["iommufd"][k], m["legacy"][k])
            f.write("\"%s\" 1 %.4f\n" % (title.split(" (")[0],
                                         r if r is not None else 0))
    script = """
set terminal pngcairo size 900,450 font "sans,10" noenhanced
set output '%s'
set title "A running guest: iommufd over legacy (median; below 1: iommufd cheaper)"
set style data histogram
set style histogram clustered gap 2
set style fill solid 0.6 border -1
set boxwidth 0.9
set yrange [0:1.5]
set grid ytics
set xtics rotate by -15
set ylabel "ratio (time)"
plot '%s' using 2:xtic(1) title "legacy (= 1)", '' using 3 title "iommufd / legacy"
""" % (os.path.join(docs, png), dat)
    gnuplot(work, "running.gp", script)


def plot_parallel(pm, docs, work, png):
    dat = os.path.join(work, "parallel-map.dat")
    gibs = sorted(pm["runs"], key=int)
    spread_file(dat, "GiB, serial median min max, chunks median min max",
                gibs, ("serial", "parallel"),
                lambda g, v: [x["map"] for x in pm["runs"][g][v]])
    script = """
set terminal pngcairo size 720,460 font "sans,10" noenhanced
set output '%s'
set title "Map time alone, anonymous RAM: one call per section against chunks (L1: 2 vCPUs, TCG)"
set xlabel "guest RAM (GiB)"
set ylabel "map time (s, wall; median, bars min-max)"
set key top left
set grid
set logscale x 2
set xrange [1.6:%d]
set yrange [0:*]
set xtics (%s)
plot '%s' using 1:2:3:4 with yerrorlines lw 2 title "map-threads=1", \\
     '' using 1:5:6:7 with yerrorlines lw 2 title "map-threads=0 (chunks)", \\
     '' using 1:($2*0.7) with lines dt 2 title "0.7 of map-threads=1 (target)"
""" % (os.path.join(docs, png), int(max(int(g) for g in gibs) * 1.25),
       ", ".join(gibs), dat)
    gnuplot(work, "parallel-map.gp", script)
