select * from (values (1, '12.50'), (2, '7.25'), (3, 'n/a')) as orders(order_id, amount)
