<?php
// An N+1 pattern: one query for the orders, then one more per order for its items.
require __DIR__ . '/db.php';
$orders = demo_query('SELECT id, customer FROM bitville_demo.orders ORDER BY id LIMIT 10');
foreach ($orders as $order) {
    // pg_sleep stands in for a table big enough to make each lookup cost something.
    demo_query('SELECT sku, qty FROM bitville_demo.order_items, pg_sleep(0.04) WHERE order_id = $1', array($order['id']));
}
demo_done('orders: 1 + 10 queries (N+1)');
