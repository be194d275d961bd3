<?php
// A page that spends its time in one known function (for the profile tests): ?ms= of work in
// slow_report_builder(), half sleeping and half computing, called through render_report_page().
function slow_report_builder(int $ms): int
{
    usleep($ms * 500);
    $end = hrtime(true) + $ms * 500000;
    $n = 0;
    while (hrtime(true) < $end) {
        $n++;
    }
    return $n;
}

function render_report_page(int $ms): string
{
    return 'report ' . (slow_report_builder($ms) > 0 ? 'ready' : 'empty') . "\n";
}

header('Content-Type: text/plain');
echo render_report_page((int) ($_GET['ms'] ?? 150));
