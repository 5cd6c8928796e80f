# plot.awk: accuracy against total storage (images + labels), log-x, as an SVG written to -v svg=FILE
# (-v title=... optional). Input: results.sh's rows, tab-separated: table set ipc ratio|protocol seed top1
# label-bytes image-bytes wall. Filled circles joined by a line: a set with stored soft labels at ratios 40,
# 20, 10, 1 ("lpld" rows, mean over seeds). Hollow squares: image-only sets under hard labels ("rethinkdc"
# rows with protocol "hard", mean over seeds). Small marks IPC 10, large IPC 50.
  BEGIN { Wd = 800; Ht = 480; L = 70; R = 200; T = 40; B = 60
          nn = split("random sre2l cda lpld el2n forgetting aum ccs pca edc edcens rded", names, " ")
          split("#7f7f7f #1f77b4 #ff7f0e #2ca02c #8c564b #17becf #bcbd22 #e377c2 #9467bd #d62728 #ff9896 #000000", colours, " ")
          if (title == "") title = "Fashion-MNIST: student top-1 against storage (images + stored labels)"
          for (i = 1; i <= nn; i++) col[names[i]] = colours[i] }
  $1 == "lpld" && $6 != "" { key = $2 SUBSEP $3 SUBSEP $4; n[key]++; acc[key] += $6; st[key] = $7 + $8; used[$2] = 1 }
  $1 == "rethinkdc" && $4 == "hard" && $6 != "" { key = $2 SUBSEP $3 SUBSEP "hard"; n[key]++; acc[key] += $6; st[key] = $8; used[$2] = 1 }
  END {
    xmin = 1e30; xmax = 0; ymin = 100; ymax = 0
    for (key in n) { a = acc[key] / n[key]; s = st[key]; if (s <= 0) continue
      if (s < xmin) xmin = s; if (s > xmax) xmax = s; if (a < ymin) ymin = a; if (a > ymax) ymax = a }
    if (xmax == 0) { print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>" > svg; exit }
    lx0 = int(log(xmin) / log(10)); lx1 = int(log(xmax) / log(10)) + 1
    y0 = int(ymin / 10) * 10; y1 = int(ymax / 5) * 5 + 5; step = (y1 - y0 > 40) ? 10 : 5
    pw = Wd - L - R; ph = Ht - T - B
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", Wd, Ht > svg
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > svg
    printf "<text x=\"%d\" y=\"22\" font-size=\"15\">%s</text>\n", L, title > svg
    for (e = lx0; e <= lx1; e++) { x = L + pw * (e - lx0) / (lx1 - lx0)
      printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">1e%d B</text>\n", x, T, x, T + ph, x, T + ph + 18, e > svg }
    for (y = y0; y <= y1; y += step) { py = T + ph * (y1 - y) / (y1 - y0)
      printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n", L, py, L + pw, py, L - 6, py + 4, y > svg }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">total bytes: PNG images + stored labels (log scale)</text>\n", L + pw / 2, Ht - 15 > svg
    printf "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">top-1 on fmnist:test</text>\n", T + ph / 2 > svg
    split("40 20 10 1", rs, " ")
    for (i = 1; i <= nn; i++) { m = names[i]; c = col[m]
      for (k = 10; k <= 50; k += 40) {
        pts = ""
        for (j = 1; j <= 4; j++) { key = m SUBSEP k SUBSEP rs[j]; if (!(key in n) || st[key] <= 0) continue
          x = L + pw * (log(st[key]) / log(10) - lx0) / (lx1 - lx0); y = T + ph * (y1 - acc[key] / n[key]) / (y1 - y0)
          pts = pts sprintf("%.1f,%.1f ", x, y)
          printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"><title>%s IPC %s, labels 1/%s: %.2f%%, %d B</title></circle>\n", x, y, (k == 50 ? 5 : 3.5), c, m, k, rs[j], acc[key] / n[key], st[key] > svg }
        if (pts != "") printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\"/>\n", pts, c > svg
        key = m SUBSEP k SUBSEP "hard"
        if ((key in n) && st[key] > 0) { x = L + pw * (log(st[key]) / log(10) - lx0) / (lx1 - lx0); y = T + ph * (y1 - acc[key] / n[key]) / (y1 - y0); h = (k == 50 ? 5 : 3.5)
          printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"><title>%s IPC %s, hard labels: %.2f%%, %d B</title></rect>\n", x - h, y - h, 2 * h, 2 * h, c, m, k, acc[key] / n[key], st[key] > svg }
      } }
    ly = T + 8
    for (i = 1; i <= nn; i++) { m = names[i]; if (!(m in used)) continue
      printf "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", Wd - R + 18, ly, col[m], Wd - R + 28, ly + 4, m > svg; ly += 17 }
    ly += 6
    printf "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"#444\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">stored soft labels, 1/40 .. 1/1</text>\n", Wd - R + 18, ly, Wd - R + 28, ly + 4 > svg; ly += 17
    printf "<rect x=\"%d\" y=\"%d\" width=\"8\" height=\"8\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.5\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">hard labels (images only)</text>\n", Wd - R + 14, ly - 4, Wd - R + 28, ly + 4 > svg; ly += 17
    printf "<text x=\"%d\" y=\"%d\" font-size=\"11\">small: IPC 10, large: IPC 50</text>\n", Wd - R + 14, ly + 4 > svg
    print "</svg>" > svg
  }
