<?php
// One quick query, then most of the time in PHP itself: demo_render_invoice() is what the
// flame graph on the request's page shows (with the excimer extension loaded).
require __DIR__ . '/db.php';

/** Lays out an invoice the slow way: pure PHP work, no I/O. */
function demo_render_invoice(array $rows): string
{
    $out = '';
    $until = hrtime(true) + 450 * 1000000;
    for ($i = 0; hrtime(true) < $until; $i++) {
        $out = md5($out . $i . json_encode($rows));
    }
    return $out;
}

$rows = demo_query('SELECT id, customer FROM bitville_demo.orders ORDER BY id LIMIT 5');
demo_render_invoice($rows);
demo_done('invoice: 450 ms of PHP in demo_render_invoice()');
