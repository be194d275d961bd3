<?php
// A few moderate queries, each different.
require __DIR__ . '/db.php';
$id = isset($_GET['id']) ? (int) $_GET['id'] : 1;
demo_query('SELECT id, customer FROM bitville_demo.orders, pg_sleep(0.12) WHERE customer = $1', array('customer-' . $id));
demo_query('SELECT count(*) FROM bitville_demo.order_items i JOIN bitville_demo.orders o ON o.id = i.order_id, pg_sleep(0.15) WHERE o.customer = $1', array('customer-' . $id));
demo_query("UPDATE bitville_demo.orders SET seen_at = now() WHERE customer = 'customer-' || $id");
usleep(150000); // PHP's own work (rendering)
demo_done('customer: three different queries and some PHP time');
